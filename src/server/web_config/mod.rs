//! The exporter-toolkit web configuration file Prometheus exporters share: TLS (optionally
//! with client certificates), basic-auth users with bcrypt hashes, extra response headers and
//! a rate limit. Every key of exporter-toolkit's schema is honoured or refused with a
//! one-line error naming it; nothing is accepted and ignored.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt            # or cert: <PEM>
//!   key_file: server.key             # or key: <PEM> (the file then holds a secret)
//!   client_auth_type: RequireAndVerifyClientCert
//!   client_ca_file: ca.crt           # or client_ca: <PEM>
//!   client_allowed_sans: [prometheus.example.com]
//!   min_version: TLS12
//!   max_version: TLS13
//!   cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]
//!   curve_preferences: [X25519, CurveP256]
//!   prefer_server_cipher_suites: true
//! http_server_config:
//!   http2: true
//!   headers:
//!     Strict-Transport-Security: max-age=31536000
//! basic_auth_users:
//!   prometheus: $2y$10$...
//! rate_limit:
//!   interval: 1s
//!   burst: 10
//! ```

mod client_sans;
mod headers;
mod tls;
#[cfg(test)]
mod tls_tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use serde::Deserialize;

pub use tls::TlsPolicy;

#[derive(Clone)]
pub struct WebConfig {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What a TLS connection is held to; a change closes existing connections (a
    /// certificate rotation alone does not).
    pub tls_policy: Option<TlsPolicy>,
    /// `http_server_config.http2`: offer HTTP/2 through TLS ALPN (never on plain HTTP).
    pub http2: bool,
    /// user -> bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// `http_server_config.headers`, checked: set on every response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `rate_limit`: requests over it are answered 429.
    pub rate_limit: Option<RateLimit>,
}

impl Default for WebConfig {
    fn default() -> Self {
        // exporter-toolkit's default: HTTP/2 allowed (only ever reached through TLS here).
        WebConfig {
            tls: None,
            tls_policy: None,
            http2: true,
            users: BTreeMap::new(),
            headers: Vec::new(),
            rate_limit: None,
        }
    }
}

/// One request per `interval` on average, `burst` at once (a token bucket shared by every
/// client, as exporter-toolkit's golang.org/x/time/rate limiter is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print hashes or key material.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls_policy)
            .field("http2", &self.http2)
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("headers", &self.headers)
            .field("rate_limit", &self.rate_limit)
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebConfig {
    tls_server_config: Option<tls::RawTls>,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    #[serde(default)]
    http_server_config: RawHttpServer,
    rate_limit: Option<RawRateLimit>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttpServer {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    /// Go's time.Duration in YAML: a string ("1s") or an integer of nanoseconds.
    #[serde(default)]
    interval: Option<serde_yaml_ng::Value>,
    #[serde(default)]
    burst: Option<i64>,
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
        let headers = headers::check(&raw.http_server_config.headers).map_err(at)?;
        let rate_limit = raw.rate_limit.map(|r| r.resolve()).transpose().map_err(at)?.flatten();
        let tls = match &raw.tls_server_config {
            Some(raw_tls) => Some(tls::server_config(raw_tls, &Files { config: path, base }, http2).map_err(at)?),
            None => None,
        };
        let (tls, tls_policy) = tls.map_or((None, None), |(config, policy)| (Some(Arc::new(config)), Some(policy)));
        Ok(WebConfig { tls, tls_policy, http2, users: raw.basic_auth_users, headers, rate_limit })
    }
}

/// Where the web config's own files are: the file itself (inline keys make it a secret) and
/// the folder relative paths resolve against.
struct Files<'a> {
    config: &'a Path,
    base: &'a Path,
}

impl Files<'_> {
    fn path(&self, relative: &Path) -> PathBuf {
        self.base.join(relative)
    }
}

impl RawRateLimit {
    /// `None`: no limit (exporter-toolkit's `interval: 0`, or no interval).
    fn resolve(self) -> Result<Option<RateLimit>, String> {
        let interval = match self.interval {
            None => return Ok(None),
            Some(serde_yaml_ng::Value::Number(n)) => match n.as_u64() {
                Some(nanos) => Duration::from_nanos(nanos),
                None => return Err(format!("rate_limit.interval: {n} is not a duration")),
            },
            Some(serde_yaml_ng::Value::String(s)) if s.trim() == "0" => Duration::ZERO,
            Some(serde_yaml_ng::Value::String(s)) => humantime::parse_duration(&s).map_err(|e| {
                format!("rate_limit.interval: {s:?} is not a duration ({e}); use e.g. \"1s\" or \"100ms\"")
            })?,
            Some(other) => return Err(format!("rate_limit.interval: {other:?} is not a duration")),
        };
        if interval.is_zero() {
            return Ok(None);
        }
        match self.burst {
            Some(burst @ 1..=1_000_000) => Ok(Some(RateLimit { interval, burst: burst as u32 })),
            // golang.org/x/time/rate with burst 0 allows nothing at all.
            _ => Err("rate_limit.burst must be between 1 and 1000000 when rate_limit.interval is set (0 would refuse every request)".into()),
        }
    }
}

/// `$2y$10$` + 53 characters of salt and hash.
fn is_bcrypt_hash(hash: &str) -> bool {
    let parts: Vec<&str> = hash.splitn(4, '$').collect();
    matches!(parts.as_slice(), ["", "2a" | "2b" | "2x" | "2y", cost, rest]
        if cost.len() == 2 && cost.parse::<u32>().is_ok() && rest.len() == 53)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn load_in(dir: &Path, yaml: &str) -> Result<WebConfig, String> {
        let path = dir.join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        WebConfig::load(&path).map_err(|e| e.replace(&dir.display().to_string(), "DIR"))
    }

    fn load(yaml: &str) -> Result<WebConfig, String> {
        load_in(tempfile::tempdir().unwrap().path(), yaml)
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
        assert!(load("tls_server_config:\n  certificate: x\n").unwrap_err().contains("unknown field `certificate`"));
        let err = load("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n").unwrap_err();
        assert!(err.starts_with("DIR/web.yml: tls_server_config.cert_file: DIR/nope.crt: "), "{err}");
        assert!(load("rate_limits: {}\n").unwrap_err().contains("unknown field `rate_limits`"));
    }

    #[test]
    fn http2_follows_http_server_config() {
        assert!(load("{}\n").unwrap().http2);
        assert!(!load("http_server_config:\n  http2: false\n").unwrap().http2);
        assert!(load("http_server_config:\n  http3: true\n").unwrap_err().contains("unknown field `http3`"));
    }

    #[test]
    fn rate_limit_is_a_token_bucket_or_nothing() {
        let limit = |yaml: &str| load(yaml).map(|w| w.rate_limit);
        assert_eq!(
            limit("rate_limit:\n  interval: 100ms\n  burst: 5\n").unwrap(),
            Some(RateLimit { interval: Duration::from_millis(100), burst: 5 })
        );
        assert_eq!(
            limit("rate_limit:\n  interval: 1000000000\n  burst: 1\n").unwrap(),
            Some(RateLimit { interval: Duration::from_secs(1), burst: 1 }),
            "an integer is nanoseconds, as Go reads it"
        );
        assert_eq!(limit("rate_limit:\n  interval: 0\n  burst: 0\n").unwrap(), None, "interval 0 turns it off");
        assert_eq!(limit("rate_limit: {}\n").unwrap(), None);
        let err = limit("rate_limit:\n  interval: 1s\n").unwrap_err();
        assert!(err.ends_with("rate_limit.burst must be between 1 and 1000000 when rate_limit.interval is set (0 would refuse every request)"), "{err}");
        assert!(
            limit("rate_limit:\n  interval: soon\n  burst: 1\n").unwrap_err().contains("rate_limit.interval: \"soon\"")
        );
        assert!(
            limit("rate_limit:\n  interval: 1s\n  burst: 1\n  period: 2\n")
                .unwrap_err()
                .contains("unknown field `period`")
        );
    }
}
