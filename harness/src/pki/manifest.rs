//! `manifest.json`: what was generated, when, for which hosts, and for each role its files, issuer, validity,
//! SANs and what a correct peer must do with it. Written last by a generation, read back by [`load_manifest`].

use super::{PkiError, Role, SignedBy, TrustVerdict};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::{OffsetDateTime, UtcOffset};

/// The manifest's file name inside the PKI folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The manifest format this code writes and reads.
const FORMAT: u32 = 1;

/// The generated PKI as recorded in `manifest.json`: one [`Entry`] per [`Role`], in [`Role::ALL`] order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// When the material was generated (RFC 3339, UTC); validity windows are relative to it.
    pub generated_at: String,
    /// What generated it.
    pub generator: String,
    /// Key and signature algorithm of every certificate.
    pub algorithm: String,
    /// The hosts the server certificates cover: `localhost`, `127.0.0.1`, `::1`, then each extra host.
    pub hosts: Vec<String>,
    /// One entry per role (private so that [`Manifest::entry`] can rely on it).
    roles: Vec<Entry>,
    /// The folder the manifest and its files are in.
    #[serde(skip)]
    dir: PathBuf,
}

/// One role's files and facts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Which role this is.
    pub role: Role,
    /// Certificate file, relative to the manifest's folder.
    pub cert: String,
    /// PKCS#8 private key file, relative to the manifest's folder.
    pub key: String,
    /// Who signed the certificate.
    pub signed_by: SignedBy,
    /// Subject common name.
    pub subject_cn: String,
    /// Start of validity (RFC 3339, UTC).
    pub valid_from: String,
    /// End of validity (RFC 3339, UTC).
    pub valid_until: String,
    /// Subject alternative names: DNS names and IP addresses.
    pub sans: Vec<String>,
    /// What a correct peer concludes, by name.
    pub verdict: TrustVerdict,
    /// What the role is for.
    pub description: String,
    /// What a correct peer must do with it.
    pub expect: String,
}

impl Manifest {
    pub(crate) fn new(
        dir: PathBuf,
        generated_at: OffsetDateTime,
        hosts: Vec<String>,
        roles: Vec<Entry>,
    ) -> Self {
        Manifest {
            format: FORMAT,
            generated_at: timestamp(generated_at),
            generator: format!("coap-harness {} (rcgen 0.13)", env!("CARGO_PKG_VERSION")),
            algorithm: "ECDSA P-256 with SHA-256".into(),
            hosts,
            roles,
            dir,
        }
    }

    /// The folder holding the manifest and the files it names.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every role's entry, in [`Role::ALL`] order.
    pub fn roles(&self) -> &[Entry] {
        &self.roles
    }

    /// The role's entry. Every manifest made or loaded here has one for every role.
    pub fn entry(&self, role: Role) -> &Entry {
        self.roles
            .iter()
            .find(|e| e.role == role)
            .expect("a manifest has an entry for every role (checked when made or loaded)")
    }

    /// The role's certificate file and private key file.
    pub fn path(&self, role: Role) -> (PathBuf, PathBuf) {
        (self.cert_path(role), self.key_path(role))
    }

    /// The role's certificate file (for [`Role::ServerChain`], server then CA).
    pub fn cert_path(&self, role: Role) -> PathBuf {
        self.dir.join(role.cert_file())
    }

    /// The role's PKCS#8 private key file (mode 0600).
    pub fn key_path(&self, role: Role) -> PathBuf {
        self.dir.join(role.key_file())
    }

    pub(crate) fn to_json(&self) -> String {
        let mut json = serde_json::to_string_pretty(self).expect("manifest serialises");
        json.push('\n');
        json
    }

    /// Checks what [`Manifest::entry`] and the paths rely on: every role once, with the file names this
    /// code uses (so a manifest cannot point outside its folder).
    fn check(&self) -> Result<(), String> {
        if self.format != FORMAT {
            return Err(format!(
                "manifest format {} is not supported (this harness reads format {FORMAT})",
                self.format
            ));
        }
        for role in Role::ALL {
            let mut entries = self.roles.iter().filter(|e| e.role == role);
            let entry = entries
                .next()
                .ok_or_else(|| format!("no entry for role `{role}`"))?;
            if entries.next().is_some() {
                return Err(format!("role `{role}` is listed twice"));
            }
            if entry.cert != role.cert_file() || entry.key != role.key_file() {
                return Err(format!(
                    "role `{role}` names files {:?} and {:?}, expected {:?} and {:?}",
                    entry.cert,
                    entry.key,
                    role.cert_file(),
                    role.key_file()
                ));
            }
        }
        Ok(())
    }
}

impl Entry {
    pub(crate) fn new(
        role: Role,
        subject_cn: &str,
        sans: &[String],
        valid_from: String,
        valid_until: String,
    ) -> Self {
        Entry {
            role,
            cert: String::new(),
            key: String::new(),
            signed_by: role.signed_by(),
            subject_cn: subject_cn.to_string(),
            valid_from,
            valid_until,
            sans: sans.to_vec(),
            verdict: role.verdict(),
            description: String::new(),
            expect: String::new(),
        }
        .retarget(role)
    }

    /// The same certificate facts, described as `role` (the chain reuses the server's).
    pub(crate) fn retarget(self, role: Role) -> Self {
        Entry {
            role,
            cert: role.cert_file().to_string(),
            key: role.key_file().to_string(),
            signed_by: role.signed_by(),
            verdict: role.verdict(),
            description: role.description().to_string(),
            expect: role.expect().to_string(),
            ..self
        }
    }
}

/// Reads and checks `manifest.json` in `dir`.
pub fn load_manifest(dir: &Path) -> Result<Manifest, PkiError> {
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| PkiError::io(&path, e))?;
    let bad = |reason: String| PkiError::BadManifest {
        path: path.clone(),
        reason,
    };
    let mut manifest: Manifest = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    manifest.check().map_err(bad)?;
    manifest.dir = dir.to_path_buf();
    Ok(manifest)
}

/// `t` as RFC 3339 in UTC to the second, the way the manifest states times: `2026-11-25T18:30:00Z`.
pub(crate) fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let roles = Role::ALL
            .iter()
            .map(|&r| Entry::new(r, "x", &[], "a".into(), "b".into()))
            .collect();
        Manifest::new(
            PathBuf::from("/pki"),
            OffsetDateTime::UNIX_EPOCH,
            vec!["localhost".into()],
            roles,
        )
    }

    fn load(json: &str) -> Result<Manifest, PkiError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), json).unwrap();
        load_manifest(dir.path())
    }

    fn rejected(json: &str) -> String {
        match load(json) {
            Err(e @ PkiError::BadManifest { .. }) => e.to_string(),
            other => panic!("expected BadManifest, got {other:?}"),
        }
    }

    #[test]
    fn timestamp_is_rfc3339_utc_seconds() {
        assert_eq!(
            timestamp(OffsetDateTime::UNIX_EPOCH + time::Duration::seconds(86_400 + 3_723)),
            "1970-01-02T01:02:03Z"
        );
    }

    #[test]
    fn round_trips_and_paths_join_the_folder() {
        let m = manifest();
        let loaded = load(&m.to_json()).unwrap();
        assert_eq!(loaded.roles, m.roles);
        assert_eq!(
            loaded.entry(Role::ExpiredServer).expect,
            Role::ExpiredServer.expect()
        );
        assert_eq!(
            m.path(Role::ServerChain),
            (
                PathBuf::from("/pki/server-chain.pem"),
                PathBuf::from("/pki/server.key")
            )
        );
    }

    #[test]
    fn json_names_roles_issuers_and_verdicts_in_snake_case() {
        let json: serde_json::Value = serde_json::from_str(&manifest().to_json()).unwrap();
        let self_signed = &json["roles"][9];
        assert_eq!(self_signed["role"], "self_signed_server");
        assert_eq!(self_signed["signed_by"], "self");
        assert_eq!(self_signed["verdict"], "self_signed");
        assert_eq!(self_signed["cert"], "selfsigned-server.pem");
        assert_eq!(
            json["roles"][6]["expect"],
            "handshake fails: certificate expired"
        );
    }

    #[test]
    fn rejects_unknown_format() {
        let mut m = manifest();
        m.format = 2;
        assert!(rejected(&m.to_json()).contains("format 2"));
    }

    #[test]
    fn rejects_missing_role() {
        let mut m = manifest();
        m.roles.retain(|e| e.role != Role::RogueClient);
        assert!(rejected(&m.to_json()).contains("`rogue_client`"));
    }

    #[test]
    fn rejects_file_outside_the_folder() {
        let mut m = manifest();
        m.roles[1].key = "../../etc/shadow".into();
        assert!(rejected(&m.to_json()).contains("etc/shadow"));
    }

    #[test]
    fn rejects_invalid_json_with_its_position() {
        let msg = rejected("{\n  \"format\": 1,\n  oops\n}");
        assert!(
            msg.contains(MANIFEST_FILE) && msg.contains("line 3"),
            "{msg}"
        );
    }
}
