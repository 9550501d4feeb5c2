//! The host list a server certificate is made for: `localhost`, `127.0.0.1`, `::1`, then each `--host`,
//! checked and written one canonical way (IP literals as `IpAddr` prints them, names in lower case).

use super::PkiError;
use std::net::IpAddr;

/// The hosts every server certificate covers, before any `--host`.
pub const DEFAULT_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The host the wrong-host certificate is made for, and nothing else.
pub const WRONG_HOST: &str = "wrong.example";

/// The defaults followed by `extra`, canonical and without duplicates, in first-seen order.
pub fn resolve(extra: &[String]) -> Result<Vec<String>, PkiError> {
    let mut hosts: Vec<String> = DEFAULT_HOSTS.iter().map(|h| h.to_string()).collect();
    for host in extra {
        let host = canonical(host)?;
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    Ok(hosts)
}

fn canonical(host: &str) -> Result<String, PkiError> {
    let bad = |reason: &str| PkiError::BadHost {
        host: host.to_string(),
        reason: reason.to_string(),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if host.starts_with('[') || host.ends_with(']') {
        return Err(bad("write IPv6 addresses without brackets"));
    }
    let name = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if name.is_empty() {
        return Err(bad("empty host name"));
    }
    if name.len() > 253 {
        return Err(bad("a DNS name is at most 253 characters"));
    }
    if name.contains(':') || name.contains('/') {
        return Err(bad(
            "give a host name or IP address, not a URL or host:port",
        ));
    }
    let labels = name.strip_prefix("*.").unwrap_or(&name);
    for label in labels.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("each dot-separated label must be 1 to 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(bad(
                "a DNS name has only letters, digits, '-' and '_' (internationalised names go in punycode, xn--...)",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("a label cannot start or end with '-'"));
        }
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(extra: &[&str]) -> Result<Vec<String>, PkiError> {
        resolve(&extra.iter().map(|h| h.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn defaults_come_first_and_extras_are_canonical_and_deduplicated() {
        assert_eq!(hosts(&[]).unwrap(), DEFAULT_HOSTS);
        assert_eq!(
            hosts(&[
                "TB.Example.com.",
                "10.1.2.3",
                "0:0::1",
                "localhost",
                "tb.example.com"
            ])
            .unwrap(),
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "tb.example.com",
                "10.1.2.3"
            ]
        );
        assert_eq!(hosts(&["*.example.com"]).unwrap()[3], "*.example.com");
    }

    #[test]
    fn rejects_what_a_certificate_cannot_carry() {
        for bad in [
            "",
            "[::1]",
            "example.com:5684",
            "coaps://example.com",
            "a..b",
            "-a.example",
            "ex ample.com",
            "bücher.example",
        ] {
            let err = hosts(&[bad]).expect_err(bad);
            assert!(matches!(err, PkiError::BadHost { .. }), "{bad}: {err}");
        }
    }
}
