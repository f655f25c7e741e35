//! The exporter-toolkit web configuration file Prometheus exporters share: TLS (optionally
//! with client certificates) and basic-auth users with bcrypt hashes.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt
//! http_server_config:
//!   http2: true
//! basic_auth_users:
//!   prometheus: $2y$10$...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;

use crate::secret_file::refuse_world_readable;

#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What a TLS connection requires of its client; a change closes existing connections
    /// (a certificate rotation alone does not).
    pub tls_policy: Option<TlsPolicy>,
    /// `http_server_config.http2`: offer HTTP/2 through TLS ALPN (never on plain HTTP).
    pub http2: bool,
    /// user -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
}

impl Default for WebConfig {
    fn default() -> Self {
        // exporter-toolkit's default: HTTP/2 allowed (only ever reached through TLS here).
        WebConfig { tls: None, tls_policy: None, http2: true, users: BTreeMap::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    pub client_auth_type: String,
    pub min_version: Option<String>,
    pub max_version: Option<String>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print hashes or key material.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls_policy)
            .field("http2", &self.http2)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    http_server_config: RawHttpServer,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttpServer {
    http2: Option<bool>,
    /// exporter-toolkit's extra response headers: accepted so its files load, not applied.
    #[allow(dead_code)]
    headers: Option<serde_yaml_ng::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: PathBuf,
    key_file: PathBuf,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    /// Go's cipher and curve knobs (and its preference between them): rustls only offers
    /// strong suites and curves, so these are accepted for the file's sake and need no
    /// counterpart.
    #[allow(dead_code)]
    #[serde(default)]
    cipher_suites: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    #[serde(default)]
    curve_preferences: Option<serde_yaml_ng::Value>,
    #[allow(dead_code)]
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

impl WebConfig {
    /// Loads and checks the file; certificate and key paths resolve against its folder.
    pub fn load(path: &Path) -> Result<WebConfig, String> {
        let at = |msg: String| format!("{}: {msg}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| at(format!("cannot read web config: {e}")))?;
        let raw: RawWebConfig = serde_yaml_ng::from_str(&text).map_err(|e| at(e.to_string()))?;
        for (user, hash) in &raw.basic_auth_users {
            if !is_bcrypt_hash(hash) {
                return Err(at(format!("basic_auth_users.{user}: not a bcrypt hash")));
            }
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let http2 = raw.http_server_config.http2.unwrap_or(true);
        let tls = raw.tls_server_config.as_ref().map(|tls| tls_config(tls, base, http2).map_err(at)).transpose()?;
        let tls_policy = raw.tls_server_config.map(|tls| TlsPolicy {
            client_auth_type: tls.client_auth_type.unwrap_or_else(|| "NoClientCert".into()),
            min_version: tls.min_version,
            max_version: tls.max_version,
        });
        Ok(WebConfig { tls: tls.map(Arc::new), tls_policy, http2, users: raw.basic_auth_users })
    }
}

/// A PEM file that should hold only public material (certificates) but holds a private key
/// too is held to the key file's rule.
fn refuse_exposed_private_key(path: &Path, field: &str) -> Result<(), String> {
    let text = std::fs::read(path).map_err(|e| format!("{field}: {}: {e}", path.display()))?;
    let has_key = text.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----");
    if has_key { refuse_world_readable(path, field, None) } else { Ok(()) }
}

/// The TLS versions from `min_version` to `max_version`, in exporter-toolkit's names. rustls
/// speaks TLS 1.2 and 1.3 only: anything older is refused rather than silently not applied.
fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<&'static [&'static rustls::SupportedProtocolVersion], String> {
    let version = |field: &str, value: Option<&str>, default: u8| match value {
        None => Ok(default),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!("tls_server_config.{field}: {other:?} is not TLS12 or TLS13")),
    };
    const TLS12_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    match (version("min_version", min, 12)?, version("max_version", max, 13)?) {
        (12, 12) => Ok(TLS12_ONLY),
        (12, _) => Ok(rustls::ALL_VERSIONS),
        (13, 13) => Ok(TLS13_ONLY),
        _ => Err("tls_server_config: min_version TLS13 is above max_version TLS12".into()),
    }
}

/// `$2y$10$` + 53 characters of salt and hash.
fn is_bcrypt_hash(hash: &str) -> bool {
    let parts: Vec<&str> = hash.splitn(4, '$').collect();
    matches!(parts.as_slice(), ["", "2a" | "2b" | "2x" | "2y", cost, rest]
        if cost.len() == 2 && cost.parse::<u32>().is_ok() && rest.len() == 53)
}

fn tls_config(raw: &RawTls, base: &Path, http2: bool) -> Result<rustls::ServerConfig, String> {
    let cert_path = base.join(&raw.cert_file);
    let key_path = base.join(&raw.key_file);
    let certs = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("tls_server_config.cert_file: {}: {e}", cert_path.display()))?;
    if certs.is_empty() {
        return Err(format!("tls_server_config.cert_file: {}: no certificate in it", cert_path.display()));
    }
    refuse_exposed_private_key(&cert_path, "tls_server_config.cert_file")?;
    // The same rule as the Google credentials file: a private key others can read is refused.
    refuse_world_readable(&key_path, "tls_server_config.key_file", None)?;
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| format!("tls_server_config.key_file: {}: {e}", key_path.display()))?;

    let versions = protocol_versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    let client_auth = raw.client_auth_type.as_deref().unwrap_or("NoClientCert");
    let builder = match client_auth {
        "NoClientCert" => builder.with_no_client_auth(),
        "RequireAndVerifyClientCert" | "VerifyClientCertIfGiven" | "RequireAnyClientCert" | "RequestClientCert" => {
            let ca_path = raw
                .client_ca_file
                .as_ref()
                .map(|p| base.join(p))
                .ok_or_else(|| format!("tls_server_config.client_auth_type {client_auth} needs client_ca_file"))?;
            refuse_exposed_private_key(&ca_path, "tls_server_config.client_ca_file")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(&ca_path)
                .map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?
            {
                let cert = cert.map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?;
                roots.add(cert).map_err(|e| format!("tls_server_config.client_ca_file: {}: {e}", ca_path.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            // rustls verifies every certificate it is given against client_ca_file, which is
            // never weaker than Go's modes: both "Require" modes refuse a client without a
            // certificate; "VerifyClientCertIfGiven" and "RequestClientCert" let it in.
            let required = matches!(client_auth, "RequireAndVerifyClientCert" | "RequireAnyClientCert");
            let verifier = if required { verifier } else { verifier.allow_unauthenticated() };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| format!("tls_server_config: {e}"))?)
        }
        other => return Err(format!("tls_server_config.client_auth_type: unknown value {other:?}")),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not form a usable pair: {e}"))?;
    // HTTP/2 is served only to clients that negotiated it here.
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str) -> Result<WebConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path).map_err(|e| e.replace(&dir.path().display().to_string(), "DIR"))
    }

    #[test]
    fn users_need_bcrypt_hashes() {
        let hash = "$2y$04$W5uxCgN9n1vXYXzBzhrnAuDhhvS39A2wm0ct2pxlA.6ifRvrW5qR.";
        let ok = load(&format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
        assert_eq!(ok.users.len(), 1);
        assert!(ok.tls.is_none());
        let err = load("basic_auth_users:\n  prometheus: hunter2\n").unwrap_err();
        assert_eq!(err, "DIR/web.yml: basic_auth_users.prometheus: not a bcrypt hash");
    }

    #[test]
    fn unknown_keys_and_missing_files_are_named() {
        assert!(load("tls_server_config:\n  cert: x\n").unwrap_err().contains("unknown field `cert`"));
        let err = load("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n").unwrap_err();
        assert!(err.starts_with("DIR/web.yml: tls_server_config.cert_file: DIR/nope.crt: "), "{err}");
    }

    #[test]
    fn min_and_max_version_bound_the_protocols() {
        let versions = |min, max| protocol_versions(min, max).map(|v| v.iter().map(|v| v.version).collect::<Vec<_>>());
        let (tls12, tls13) = (rustls::ProtocolVersion::TLSv1_2, rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(versions(None, None).unwrap(), vec![tls13, tls12]);
        assert_eq!(versions(None, Some("TLS12")).unwrap(), vec![tls12]);
        assert_eq!(versions(Some("TLS13"), None).unwrap(), vec![tls13]);
        assert_eq!(versions(Some("TLS12"), Some("TLS13")).unwrap(), vec![tls13, tls12]);
        assert!(versions(Some("TLS13"), Some("TLS12")).unwrap_err().contains("above max_version"));
        let old = versions(None, Some("TLS11")).unwrap_err();
        assert_eq!(old, "tls_server_config.max_version: \"TLS11\" is not TLS12 or TLS13");
    }

    #[test]
    fn http2_follows_http_server_config() {
        assert!(load("{}\n").unwrap().http2);
        assert!(!load("http_server_config:\n  http2: false\n").unwrap().http2);
        assert!(load("http_server_config:\n  http3: true\n").unwrap_err().contains("unknown field `http3`"));
    }
}
