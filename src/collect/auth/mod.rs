//! Google access tokens for API calls, from every credential Application Default Credentials
//! accept — service-account keys, a person's gcloud login, impersonated service accounts,
//! Workload Identity Federation (file, URL, executable and AWS subject tokens) and the metadata
//! server — optionally impersonating the auditor's service account on top, with a quota project.
//!
//! gcp_auth stays the base: its `TokenProvider` trait is what the rest of the daemon holds, its
//! `Token` what the cache serves, its RS256 `Signer` what signs key-file assertions. It cannot
//! do the rest (federation, impersonation, quota project, metadata host) and its own HTTP
//! client ignores proxies and has no timeout, so the token requests are our own small
//! providers (`Mint`s) on the API client's reqwest client. Google's official google-cloud-auth
//! crate was the alternative; it was not taken because it builds a new HTTP client per token
//! (no shared proxy settings, pool or timeouts), cannot override the IAM Credentials endpoint,
//! puts response bodies and executable stderr into its errors, never recovers a credential
//! after a permanent error, and would add 32 crates and an MSRV of 1.91 (docs/credentials.md).
//!
//! `resolve` decides what to use (no network I/O), `file` reads credential files, `build` chains
//! the providers, each provider module makes one kind of token request, `cache` holds each
//! hop's token, `describe` says it all for check-config.

mod build;
mod cache;
mod describe;
mod error;
mod external;
mod file;
mod http;
mod impersonate;
mod metadata;
mod resolve;
mod secret;
mod service_account;
mod user;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use gcp_auth::TokenProvider;

use self::build::Build;
use self::cache::CLOUD_PLATFORM;
pub use self::file::service_account_name;
use self::http::TokenHttp;
pub use self::impersonate::delegate_name;
use self::resolve::Env;
use super::error::ApiError;
use crate::config::Gcp;

pub struct Tokens {
    provider: Arc<dyn TokenProvider>,
    quota_project: Option<String>,
    /// Who API calls are made as and with what, for the log line after the first token.
    identity: String,
    source: String,
    announced: AtomicBool,
}

impl Tokens {
    /// Resolves and checks the credentials now, so an unusable file fails at start-up in one
    /// line naming it and its type. `http` is the API client (its proxy settings are the token
    /// requests' too); `builder` makes a client with the same settings, for the proxy-less one
    /// metadata servers need.
    pub fn new(
        gcp: &Gcp,
        http: reqwest::Client,
        builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> Result<Tokens, String> {
        let plan = resolve::plan(gcp, &Env::from_process())?;
        let describe::Description { identity, source, .. } = describe::describe(&plan, gcp);
        let quota_project = plan.quota_project.as_ref().map(|(q, _)| q.clone());
        let build = Build { http: TokenHttp::new(http, builder), gcp };
        let provider = build.plan(plan)?;
        Ok(Tokens { provider, quota_project, identity, source, announced: AtomicBool::new(false) })
    }

    /// A token for the next API call: cached, refreshed ahead of expiry, fetched once for all
    /// concurrent callers.
    pub async fn token(&self) -> Result<String, ApiError> {
        let token = self.provider.token(&[CLOUD_PLATFORM]).await.map_err(|e| {
            ApiError::Auth(match e {
                // Our providers' errors are already one secret-free line.
                gcp_auth::Error::Other(_, inner) => inner.to_string(),
                other => crate::error::error_chain(&other),
            })
        })?;
        if !self.announced.swap(true, Ordering::Relaxed) {
            tracing::info!(identity = %self.identity, credentials = %self.source, "authenticated to Google");
        }
        Ok(token.as_str().to_owned())
    }

    /// Sent as `x-goog-user-project` on every Google API call (not on token requests, so the
    /// source identity of an impersonation needs no rights on the billing project).
    pub fn quota_project(&self) -> Option<&str> {
        self.quota_project.as_deref()
    }
}

/// What check-config prints about credentials, or the refusal; no network I/O.
pub fn describe(gcp: &Gcp) -> Result<String, String> {
    resolve::plan(gcp, &Env::from_process()).map(|plan| describe::describe(&plan, gcp).text)
}
