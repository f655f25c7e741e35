//! `tls_server_config` as a rustls server configuration (ring). exporter-toolkit's keys map
//! onto rustls where rustls has the same thing; what it lacks (TLS 1.0/1.1, CBC and RSA
//! key-exchange suites, P-521) is refused with the reason, and client certificates are
//! always verified against the configured CA (never weaker than Go's modes; see
//! `client_verifier`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls::{NamedGroup, RootCertStore, SupportedCipherSuite, SupportedProtocolVersion};
use serde::Deserialize;

use super::Files;
use super::client_sans::AllowedSans;
use crate::secret_file::refuse_world_readable;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// Inline PEM, instead of `cert_file`.
    #[serde(default)]
    cert: Option<String>,
    /// Inline PEM private key, instead of `key_file`: the web config file then holds a secret.
    #[serde(default)]
    key: Option<String>,
    /// Inline PEM CA certificates, instead of `client_ca_file`.
    #[serde(default)]
    client_ca: Option<String>,
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    client_allowed_sans: Option<Vec<String>>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
    #[serde(default)]
    cipher_suites: Option<Vec<String>>,
    #[serde(default)]
    curve_preferences: Option<Vec<String>>,
    #[serde(default)]
    prefer_server_cipher_suites: Option<bool>,
}

/// What a TLS connection is held to: everything but the certificate, key and CA contents,
/// which a reload swaps in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsPolicy {
    pub client_auth_type: String,
    pub client_allowed_sans: Vec<String>,
    pub versions: (String, String),
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    pub prefer_server_cipher_suites: bool,
}

/// Where a PEM comes from: a file (relative to the web config) or the web config itself.
enum Pem<'a> {
    File(PathBuf),
    Inline(&'a str),
}

impl<'a> Pem<'a> {
    /// The one of `inline` and `file` that is set (an empty string counts as unset, as in Go).
    fn pick(
        inline: &'a Option<String>,
        file: &Option<PathBuf>,
        files: &Files,
        keys: (&str, &str),
    ) -> Result<Option<Pem<'a>>, String> {
        let inline = inline.as_deref().filter(|s| !s.trim().is_empty());
        let file = file.as_deref().filter(|p| !p.as_os_str().is_empty());
        match (inline, file) {
            (Some(_), Some(_)) => {
                Err(format!("tls_server_config: {} and {} exclude each other: set one", keys.0, keys.1))
            }
            (Some(text), None) => Ok(Some(Pem::Inline(text))),
            (None, Some(path)) => Ok(Some(Pem::File(files.path(path)))),
            (None, None) => Ok(None),
        }
    }

    /// Names the source in errors: the file, or the inline key.
    fn describe(&self, inline_key: &str, file_key: &str) -> String {
        match self {
            Pem::File(path) => format!("tls_server_config.{file_key}: {}", path.display()),
            Pem::Inline(_) => format!("tls_server_config.{inline_key}"),
        }
    }

    fn bytes(&self, what: &str) -> Result<Vec<u8>, String> {
        match self {
            Pem::File(path) => std::fs::read(path).map_err(|e| format!("{what}: {e}")),
            Pem::Inline(text) => Ok(text.as_bytes().to_vec()),
        }
    }
}

pub fn server_config(raw: &RawTls, files: &Files, http2: bool) -> Result<(rustls::ServerConfig, TlsPolicy), String> {
    let cert = Pem::pick(&raw.cert, &raw.cert_file, files, ("cert", "cert_file"))?
        .ok_or("tls_server_config: missing one of cert or cert_file")?;
    let key = Pem::pick(&raw.key, &raw.key_file, files, ("key", "key_file"))?
        .ok_or("tls_server_config: missing one of key or key_file")?;
    let certs = certificates(&cert, "cert", "cert_file")?;
    let key = private_key(&key, files.config)?;

    let versions = versions(raw.min_version.as_deref(), raw.max_version.as_deref())?;
    let prefer_server = raw.prefer_server_cipher_suites.unwrap_or(true);
    let provider = Arc::new(provider(raw, &versions)?);
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions.iter().map(|(_, v)| *v).collect::<Vec<_>>())
        .map_err(|e| format!("tls_server_config: {e}"))?;
    let client_auth = raw.client_auth_type.as_deref().filter(|s| !s.is_empty()).unwrap_or("NoClientCert");
    let builder = match client_verifier(raw, client_auth, files, provider)? {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls_server_config: certificate and key do not form a usable pair: {e}"))?;
    config.ignore_client_order = prefer_server;
    // HTTP/2 is served only to clients that negotiated it here.
    config.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    let policy = TlsPolicy {
        client_auth_type: client_auth.to_owned(),
        client_allowed_sans: raw.client_allowed_sans.clone().unwrap_or_default(),
        versions: (versions[0].0.to_owned(), versions[versions.len() - 1].0.to_owned()),
        cipher_suites: raw.cipher_suites.clone().unwrap_or_default(),
        curve_preferences: raw.curve_preferences.clone().unwrap_or_default(),
        prefer_server_cipher_suites: prefer_server,
    };
    Ok((config, policy))
}

fn certificates(pem: &Pem, inline_key: &str, file_key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let what = pem.describe(inline_key, file_key);
    let bytes = pem.bytes(&what)?;
    let certs =
        CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>().map_err(|e| format!("{what}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what}: no certificate in it"));
    }
    // A PEM file meant for public material that holds a private key too is held to the key
    // file's rule (inline, the web config itself is checked in `private_key`).
    if let Pem::File(path) = pem {
        if bytes.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----") {
            refuse_world_readable(path, &format!("tls_server_config.{file_key}"), None)?;
        }
    }
    Ok(certs)
}

/// The same rule as the Google credentials file: a private key others can read is refused,
/// whether in `key_file` or inline in the web config.
fn private_key(pem: &Pem, config: &Path) -> Result<PrivateKeyDer<'static>, String> {
    match pem {
        Pem::File(path) => refuse_world_readable(path, "tls_server_config.key_file", None)?,
        Pem::Inline(_) => refuse_world_readable(config, "web config (it holds tls_server_config.key)", None)?,
    }
    let what = pem.describe("key", "key_file");
    // The key's own text never reaches an error message.
    PrivateKeyDer::from_pem_slice(&pem.bytes(&what)?).map_err(|e| format!("{what}: {e}"))
}

type Version = (&'static str, &'static SupportedProtocolVersion);

/// `min_version` to `max_version` (exporter-toolkit's defaults: TLS12 to TLS13).
fn versions(min: Option<&str>, max: Option<&str>) -> Result<Vec<Version>, String> {
    const ALL: [Version; 2] = [("TLS12", &rustls::version::TLS12), ("TLS13", &rustls::version::TLS13)];
    let index = |key: &str, value: Option<&str>, default: usize| -> Result<usize, String> {
        match value.filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some("TLS10" | "TLS11") => Err(format!(
                "tls_server_config.{key}: {} is not supported (rustls implements TLS12 and TLS13 only)",
                value.unwrap_or_default()
            )),
            Some(v) => ALL
                .iter()
                .position(|(name, _)| *name == v)
                .ok_or_else(|| format!("tls_server_config.{key}: unknown TLS version {v:?} (TLS12 or TLS13)")),
        }
    };
    let (low, high) = (index("min_version", min, 0)?, index("max_version", max, ALL.len() - 1)?);
    if low > high {
        return Err(format!("tls_server_config: min_version {} is above max_version {}", ALL[low].0, ALL[high].0));
    }
    Ok(ALL[low..=high].to_vec())
}

/// Go's names of suites it implements and rustls does not: CBC modes and RSA key exchange.
const GO_ONLY_SUITES: [&str; 8] = [
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
];

/// ring's provider narrowed to `cipher_suites` and `curve_preferences`, in their order.
fn provider(raw: &RawTls, versions: &[Version]) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    // Go's names: rustls's, but TLS 1.3 suites are TLS_AES_..., not TLS13_AES_....
    let name = |s: &SupportedCipherSuite| format!("{:?}", s.suite()).replacen("TLS13_", "TLS_", 1);
    if let Some(wanted) = raw.cipher_suites.as_ref().filter(|w| !w.is_empty()) {
        let (tls13, tls12): (Vec<_>, Vec<_>) =
            provider.cipher_suites.iter().copied().partition(|s| s.version() == &rustls::version::TLS13);
        let mut chosen = Vec::new();
        for w in wanted {
            if let Some(suite) = tls12.iter().find(|s| name(s) == *w) {
                if !chosen.iter().any(|c: &SupportedCipherSuite| name(c) == *w) {
                    chosen.push(*suite);
                }
            } else if tls13.iter().any(|s| name(s) == *w) {
                // As in Go: TLS 1.3 suites are not configurable, and naming one changes nothing.
            } else if GO_ONLY_SUITES.contains(&w.as_str()) {
                let offered: Vec<String> = tls12.iter().map(name).collect();
                return Err(format!(
                    "tls_server_config.cipher_suites: {w} is not implemented by rustls (no CBC or RSA key exchange); TLS 1.2 suites offered: {}",
                    offered.join(", ")
                ));
            } else {
                return Err(format!("tls_server_config.cipher_suites: unknown cipher suite {w:?}"));
            }
        }
        if chosen.is_empty() && versions.iter().any(|(n, _)| *n == "TLS12") {
            return Err("tls_server_config.cipher_suites names no TLS 1.2 suite, so TLS 1.2 clients could not connect: add one, or set min_version: TLS13".into());
        }
        provider.cipher_suites = tls13.into_iter().chain(chosen).collect();
    }
    if let Some(wanted) = raw.curve_preferences.as_ref().filter(|w| !w.is_empty()) {
        let mut groups: Vec<&'static dyn SupportedKxGroup> = Vec::new();
        for w in wanted {
            let group = match w.as_str() {
                "X25519" => NamedGroup::X25519,
                "CurveP256" => NamedGroup::secp256r1,
                "CurveP384" => NamedGroup::secp384r1,
                "CurveP521" => {
                    return Err("tls_server_config.curve_preferences: CurveP521 is not implemented by rustls with ring (X25519, CurveP256, CurveP384 are)".into());
                }
                other => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: unknown curve {other:?} (X25519, CurveP256, CurveP384)"
                    ));
                }
            };
            let supported = provider.kx_groups.iter().find(|g| g.name() == group).copied();
            if let Some(g) = supported.filter(|g| !groups.iter().any(|have| have.name() == g.name())) {
                groups.push(g);
            }
        }
        provider.kx_groups = groups;
    }
    Ok(provider)
}

/// The verifier for `client_auth_type`, or `None` for NoClientCert.
///
/// rustls verifies every client certificate it is given against the configured CA, which is
/// never weaker than Go's modes (tls_tests.rs proves each): RequireAndVerifyClientCert and
/// RequireAnyClientCert refuse a client without a certificate, and one whose certificate
/// does not chain to the CA (Go's RequireAnyClientCert would accept any certificate,
/// unverified); VerifyClientCertIfGiven and RequestClientCert let a client without a
/// certificate in and verify one that is given (Go's RequestClientCert would not verify it).
/// Every mode but NoClientCert therefore needs the CA.
fn client_verifier(
    raw: &RawTls,
    client_auth: &str,
    files: &Files,
    provider: Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let ca = Pem::pick(&raw.client_ca, &raw.client_ca_file, files, ("client_ca", "client_ca_file"))?;
    let sans = raw.client_allowed_sans.clone().unwrap_or_default();
    let required = match client_auth {
        "NoClientCert" => {
            if ca.is_some() {
                return Err("tls_server_config: client CAs are configured but client_auth_type is NoClientCert: set client_auth_type (RequireAndVerifyClientCert)".into());
            }
            if !sans.is_empty() {
                return Err(
                    "tls_server_config.client_allowed_sans needs client_auth_type RequireAndVerifyClientCert".into()
                );
            }
            return Ok(None);
        }
        // "RequireClientCert": exporter-toolkit's older name for RequireAnyClientCert.
        "RequireAndVerifyClientCert" | "RequireAnyClientCert" | "RequireClientCert" => true,
        "VerifyClientCertIfGiven" | "RequestClientCert" => false,
        other => return Err(format!("tls_server_config.client_auth_type: unknown value {other:?}")),
    };
    let ca = ca.ok_or_else(|| {
        format!(
            "tls_server_config.client_auth_type {client_auth} needs client_ca_file or client_ca: client certificates are always verified here"
        )
    })?;
    if !sans.is_empty() && !required {
        return Err(format!(
            "tls_server_config.client_allowed_sans needs a client_auth_type that requires a certificate (RequireAndVerifyClientCert), not {client_auth}: a client without one would get in"
        ));
    }
    let mut roots = RootCertStore::empty();
    let what = ca.describe("client_ca", "client_ca_file");
    for cert in certificates(&ca, "client_ca", "client_ca_file")? {
        roots.add(cert).map_err(|e| format!("{what}: {e}"))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let verifier = if required { verifier } else { verifier.allow_unauthenticated() };
    let verifier = verifier.build().map_err(|e| format!("tls_server_config: {e}"))?;
    if sans.is_empty() { Ok(Some(verifier)) } else { Ok(Some(Arc::new(AllowedSans { verifier, allowed: sans }))) }
}
