//! Token files (`devices.token_file`, `run --token-file`): one access token per line, or a CSV file whose
//! header is `token,psk_identity,psk_key,cert,key` (any of these columns, in any order; `token` optional)
//! giving each device its own credentials, as ThingsBoard provisions them. Empty cells are allowed: a
//! device may have a token only, a PSK, or a certificate (X.509 devices post without a token in the path).
//! `cert` and `key` paths are relative to the CSV file's folder. Lines starting with `#` are comments.
//!
//! ```text
//! token,psk_identity,psk_key,cert,key
//! A1b2C3,,,,
//! ,meter-7,hex:00112233445566778899aabbccddeeff,,
//! ,,,devices/dev-2.pem,devices/dev-2.key
//! ```

use super::plan::DeviceCredentials;
use crate::transport::dtls::Psk;
use std::path::Path;

/// The columns a CSV token file may have, by these exact names.
pub const COLUMNS: [&str; 5] = ["token", "psk_identity", "psk_key", "cert", "key"];

/// What a token file gives: each device's token (empty for a device without one), and, for a CSV file, each
/// device's own DTLS credentials.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenFile {
    pub tokens: Vec<String>,
    pub credentials: Option<Vec<DeviceCredentials>>,
}

/// Parses a PSK given as text or `hex:0a1b...`.
pub fn psk_key(text: &str) -> Result<Vec<u8>, String> {
    let key = match text.strip_prefix("hex:") {
        Some(hex) => decode_hex(hex).ok_or("`hex:` is followed by something that is not hex")?,
        None => text.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err("the key is empty".into());
    }
    Ok(key)
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() % 2 != 0 || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// The lines that hold data: (1-based line number, trimmed text), comments and blank lines left out.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn cells(line: &str) -> Vec<String> {
    line.split(',')
        .map(|c| {
            let c = c.trim();
            c.strip_prefix('"')
                .and_then(|c| c.strip_suffix('"'))
                .unwrap_or(c)
                .to_string()
        })
        .collect()
}

/// Whether the first data line is a CSV header: only column names from [`COLUMNS`], at least one comma.
fn header(line: &str) -> Option<Vec<String>> {
    let names = cells(line);
    (names.len() > 1 && names.iter().all(|n| COLUMNS.contains(&n.as_str()))).then_some(names)
}

/// Reads a token file's text; `dir` is the folder its `cert`/`key` paths are relative to. Errors name the
/// line (`line 4: ...`).
pub fn parse(text: &str, dir: &Path) -> Result<TokenFile, String> {
    let mut data = lines(text).peekable();
    let Some(names) = data.peek().and_then(|(_, l)| header(l)) else {
        let tokens = data.map(|(_, l)| l.to_string()).collect();
        return Ok(TokenFile {
            tokens,
            credentials: None,
        });
    };
    data.next();
    let mut seen = std::collections::HashSet::new();
    for n in &names {
        if !seen.insert(n.as_str()) {
            return Err(format!("line 1: column `{n}` is given twice"));
        }
    }
    let col = |name: &str| names.iter().position(|n| n == name);
    let [token, identity, key, cert, cert_key] = COLUMNS.map(col);
    let mut tokens = Vec::new();
    let mut creds = Vec::new();
    let mut identities = std::collections::HashMap::new();
    for (line, text) in data {
        let row = cells(text);
        if row.len() != names.len() {
            return Err(format!(
                "line {line}: {} cells, but the header has {} ({})",
                row.len(),
                names.len(),
                names.join(",")
            ));
        }
        let get = |c: Option<usize>| c.map(|i| row[i].clone()).filter(|v| !v.is_empty());
        let psk = match (get(identity), get(key)) {
            (None, None) => None,
            (Some(id), Some(k)) => {
                let key = psk_key(&k).map_err(|e| format!("line {line}: psk_key: {e}"))?;
                if let Some(first) = identities.insert(id.clone(), line) {
                    return Err(format!(
                        "line {line}: psk_identity `{id}` is also on line {first}: each device needs its own"
                    ));
                }
                Some(Psk {
                    identity: id.into_bytes(),
                    key,
                })
            }
            (Some(_), None) => return Err(format!("line {line}: psk_identity needs psk_key")),
            (None, Some(_)) => return Err(format!("line {line}: psk_key needs psk_identity")),
        };
        let (cert, key) = match (get(cert), get(cert_key)) {
            (None, None) => (None, None),
            (Some(c), Some(k)) => (Some(dir.join(c)), Some(dir.join(k))),
            (Some(_), None) => return Err(format!("line {line}: cert needs key")),
            (None, Some(_)) => return Err(format!("line {line}: key needs cert")),
        };
        let tok = get(token).unwrap_or_default();
        if tok.is_empty() && psk.is_none() && cert.is_none() {
            return Err(format!(
                "line {line}: no credentials: give a token, a psk_identity and psk_key, or a cert and key"
            ));
        }
        tokens.push(tok);
        creds.push(DeviceCredentials { psk, cert, key });
    }
    Ok(TokenFile {
        tokens,
        credentials: Some(creds),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn plain_files_are_one_token_a_line() {
        let f = parse("# fleet\nA1\n\n  B2  \n", Path::new("/x")).unwrap();
        assert_eq!(f.tokens, ["A1", "B2"]);
        assert_eq!(f.credentials, None);
        // A single column named `token` is a token, not a header: a header has a comma.
        assert_eq!(parse("token\n", Path::new("/x")).unwrap().tokens, ["token"]);
    }

    #[test]
    fn csv_gives_each_device_its_own_credentials() {
        let text = "token,psk_identity,psk_key,cert,key\nA1b2,,,,\n,meter-7,hex:0011ff,,\n\"C3\",meter-8,secret,d/2.pem,d/2.key\n,,,d/3.pem,d/3.key\n";
        let f = parse(text, Path::new("/creds")).unwrap();
        assert_eq!(f.tokens, ["A1b2", "", "C3", ""]);
        let c = f.credentials.unwrap();
        assert_eq!(c[0], DeviceCredentials::default());
        assert_eq!(
            c[1].psk,
            Some(Psk {
                identity: b"meter-7".to_vec(),
                key: vec![0, 0x11, 0xff]
            })
        );
        assert_eq!(c[2].psk.as_ref().unwrap().key, b"secret");
        assert_eq!(c[2].cert, Some(PathBuf::from("/creds/d/2.pem")));
        assert_eq!(c[3].key, Some(PathBuf::from("/creds/d/3.key")));
        // Columns in another order, some left out.
        let f = parse("psk_identity,psk_key\nid-0,k0\nid-1,k1\n", Path::new("/")).unwrap();
        assert_eq!(f.tokens, ["", ""]);
        assert_eq!(
            f.credentials.unwrap()[1].psk.as_ref().unwrap().identity,
            b"id-1"
        );
    }

    #[test]
    fn rejects_broken_rows_naming_the_line() {
        let h = "token,psk_identity,psk_key,cert,key\n";
        for (row, want) in [
            ("A,id,,,", "line 2: psk_identity needs psk_key"),
            ("A,,k,,", "line 2: psk_key needs psk_identity"),
            ("A,,,c.pem,", "line 2: cert needs key"),
            (",,,,", "line 2: no credentials"),
            ("A,,", "line 2: 3 cells, but the header has 5"),
            ("A,id,hex:zz,,", "line 2: psk_key: `hex:` is followed by"),
        ] {
            let e = parse(&format!("{h}{row}\n"), Path::new("/")).unwrap_err();
            assert!(e.starts_with(want), "{row}: {e}");
        }
        let e = parse(&format!("{h}A,id,k,,\nB,id,k2,,\n"), Path::new("/")).unwrap_err();
        assert!(
            e.contains("line 3: psk_identity `id` is also on line 2"),
            "{e}"
        );
        let e = parse("token,token\nA,B\n", Path::new("/")).unwrap_err();
        assert!(e.contains("column `token` is given twice"), "{e}");
    }
}
