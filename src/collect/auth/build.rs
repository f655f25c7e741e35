//! Turns a resolved plan into a chain of cached hops: the credential's own token, then any
//! impersonation the file asks for, then `gcp.impersonate_service_account` on top.

use std::sync::Arc;
use std::time::Duration;

use gcp_auth::TokenProvider;

use super::cache::{CLOUD_PLATFORM, Cached, Mint, Windows};
use super::external::{self, IAM_SCOPE, Sts, Subject};
use super::file::{ExternalSpec, Parsed, SourceSpec, Spec};
use super::http::TokenHttp;
use super::resolve::{Credential, Plan};
use super::{impersonate, service_account, user};
use crate::config::Gcp;

/// IAM Credentials' default and, without an organisation policy, maximum lifetime.
const IMPERSONATION_LIFETIME: Duration = Duration::from_secs(3600);

/// Turns a plan into a chain of cached hops.
pub struct Build<'a> {
    pub http: TokenHttp,
    pub gcp: &'a Gcp,
}

impl Build<'_> {
    fn cached(&self, mint: impl Mint + 'static) -> Arc<Cached> {
        Arc::new(Cached::new(mint, self.http.clone(), self.gcp.token_timeout, Windows::default()))
    }

    pub fn plan(&self, plan: Plan) -> Result<Arc<dyn TokenProvider>, String> {
        let base = match plan.credential {
            Credential::File { parsed, .. } => self.parsed(parsed)?,
            Credential::Metadata { metadata, .. } => self.cached(metadata),
        };
        let top = match plan.impersonate {
            None => base,
            Some((target, delegates)) => self.impersonate(base, &target, delegates)?,
        };
        Ok(top)
    }

    /// `target` impersonated by `source` at gcp.endpoints.iamcredentials (for the gcloud file,
    /// too: like Google's Python library, the file names the account, the configured endpoint
    /// is called).
    fn impersonate(&self, source: Arc<Cached>, target: &str, delegates: Vec<String>) -> Result<Arc<Cached>, String> {
        let url = impersonate::url(&self.gcp.endpoints.iamcredentials, target)?;
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
                self.impersonate(source, &i.target, i.delegates)?
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
