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
//! `resolve` decides what to use (no network I/O), `file` reads credential files, each provider
//! module makes one kind of token request, `cache` holds each hop's token, `describe` says it
//! all for check-config.

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
use std::time::Duration;

use gcp_auth::TokenProvider;

use self::cache::{CLOUD_PLATFORM, Cached, Mint, Windows};
use self::external::{IAM_SCOPE, Sts, Subject};
pub use self::file::service_account_name;
use self::file::{ExternalSpec, Parsed, SourceSpec, Spec};
use self::http::TokenHttp;
pub use self::impersonate::delegate_name;
use self::resolve::{Credential, Env, Plan};
use super::error::ApiError;
use crate::config::Gcp;

/// IAM Credentials' default and, without an organisation policy, maximum lifetime.
const IMPERSONATION_LIFETIME: Duration = Duration::from_secs(3600);

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

/// Turns a plan into a chain of cached hops.
struct Build<'a> {
    http: TokenHttp,
    gcp: &'a Gcp,
}

impl Build<'_> {
    fn cached(&self, mint: impl Mint + 'static) -> Arc<Cached> {
        Arc::new(Cached::new(mint, self.http.clone(), self.gcp.token_timeout, Windows::default()))
    }

    fn plan(&self, plan: Plan) -> Result<Arc<dyn TokenProvider>, String> {
        let base = match plan.credential {
            Credential::File { parsed, .. } => self.parsed(parsed)?,
            Credential::Metadata { metadata, .. } => self.cached(metadata),
        };
        let top = match plan.impersonate {
            None => base,
            Some((target, delegates)) => {
                self.impersonate(base, &self.gcp.endpoints.iamcredentials, &target, delegates)?
            }
        };
        Ok(top)
    }

    fn impersonate(
        &self,
        source: Arc<Cached>,
        base: &str,
        target: &str,
        delegates: Vec<String>,
    ) -> Result<Arc<Cached>, String> {
        let url = impersonate::url(base, target)?;
        Ok(self.cached(impersonate::Impersonate { source, url, delegates, lifetime: IMPERSONATION_LIFETIME }))
    }

    fn parsed(&self, parsed: Parsed) -> Result<Arc<Cached>, String> {
        Ok(match parsed.spec {
            Spec::ServiceAccount(s) => self.cached(service_account::ServiceAccount {
                email: s.email,
                token_uri: s.token_uri,
                key_id: s.key_id,
                key: s.key,
            }),
            Spec::AuthorizedUser(u) => {
                let token_url = url::Url::parse(&format!("{}/token", self.gcp.endpoints.oauth2))
                    .map_err(|e| format!("gcp.endpoints.oauth2: {e}"))?;
                self.cached(user::User {
                    token_url,
                    client_id: u.client_id,
                    client_secret: u.client_secret,
                    refresh_token: u.refresh_token,
                })
            }
            Spec::Impersonated(i) => {
                let source = self.parsed(*i.source)?;
                // Like Google's Python library: the file names the account, the configured
                // endpoint is called.
                self.impersonate(source, &self.gcp.endpoints.iamcredentials, &i.target, i.delegates)?
            }
            Spec::External(e) => self.external(*e),
        })
    }

    fn external(&self, e: ExternalSpec) -> Arc<Cached> {
        let subject = match e.source {
            SourceSpec::File { path, format } => Subject::File(external::subject::FileSource { path, format }),
            SourceSpec::Url { url, headers, format } => {
                Subject::Url(external::subject::UrlSource { url, headers, format })
            }
            SourceSpec::Executable { argv, timeout, output_file } => {
                Subject::Executable(external::executable::Executable { argv, timeout, output_file })
            }
            SourceSpec::Aws { region_url, credentials_url, verification_url, imdsv2_url } => {
                Subject::Aws(external::aws::Aws { region_url, credentials_url, verification_url, imdsv2_url })
            }
        };
        let sts = self.cached(Sts {
            token_url: e.token_url,
            audience: e.audience,
            subject_token_type: e.subject_token_type,
            scope: if e.impersonation.is_some() { IAM_SCOPE } else { CLOUD_PLATFORM },
            client: e.client,
            workforce_user_project: e.workforce_user_project,
            impersonated: e.impersonation.as_ref().map(|i| i.email.clone()),
            subject,
        });
        match e.impersonation {
            None => sts,
            Some(i) => self.cached(impersonate::Impersonate {
                source: sts,
                url: i.url,
                delegates: Vec::new(),
                lifetime: i.lifetime,
            }),
        }
    }
}
