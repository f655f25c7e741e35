//! Service-account impersonation: IAM Credentials `generateAccessToken`, called with the source
//! credential's token. The minted token is what API calls carry; the source token is only ever
//! sent here. Needs `roles/iam.serviceAccountTokenCreator` for the caller on the first delegate
//! (or the target), and for each delegate on the next.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use url::Url;

use super::cache::{CLOUD_PLATFORM, Cached, Mint, Minted};
use super::error::{AuthError, endpoint};
use super::http::{TokenHttp, Via};
use super::secret::Secret;

pub struct Impersonate {
    /// The identity that asks; its own cache, so a still-fresh source token is reused.
    pub source: Arc<Cached>,
    /// `…/v1/projects/-/serviceAccounts/{target}:generateAccessToken`.
    pub url: Url,
    /// Full resource names, `projects/-/serviceAccounts/{email}`, as the API documents them.
    pub delegates: Vec<String>,
    pub lifetime: Duration,
}

/// `{base}/v1/projects/-/serviceAccounts/{email}:generateAccessToken`.
pub fn url(base: &str, email: &str) -> Result<Url, String> {
    let text = format!("{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken", base.trim_end_matches('/'));
    Url::parse(&text).map_err(|e| format!("{text}: {e}"))
}

/// `email` or `projects/-/serviceAccounts/email` as the full name delegates need.
pub fn delegate_name(email: &str) -> String {
    format!("projects/-/serviceAccounts/{}", email.trim_start_matches("projects/-/serviceAccounts/"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    access_token: Secret,
    expire_time: String,
}

#[async_trait]
impl Mint for Impersonate {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError> {
        let what = self.what();
        let source = self.source.get().await.map_err(|e| e.context(&format!("{what}: the source credential")))?;
        let mut body = serde_json::json!({
            "scope": [CLOUD_PLATFORM],
            "lifetime": format!("{}s", self.lifetime.as_secs()),
        });
        // "For direct requests, leave this field blank" (IAM Credentials reference).
        if !self.delegates.is_empty() {
            body["delegates"] = serde_json::json!(self.delegates);
        }
        let bearer = Secret::new(source.as_str());
        let answer: Answer = http
            .json(
                Method::POST,
                &self.url,
                Via::for_url(&self.url),
                |r| r.bearer_auth(bearer.expose()).json(&body),
                &[&bearer],
            )
            .await?;
        if answer.access_token.is_empty() {
            return Err(AuthError::permanent(format!("{what}: the response has an empty accessToken")));
        }
        Minted::until(answer.access_token, &answer.expire_time, &what)
    }

    fn what(&self) -> String {
        endpoint("POST", &self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_delegates_take_the_documented_form() {
        assert_eq!(
            url("https://iamcredentials.googleapis.com/", "a@p.iam.gserviceaccount.com").unwrap().as_str(),
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@p.iam.gserviceaccount.com:generateAccessToken"
        );
        assert_eq!(delegate_name("hop@p.iam"), "projects/-/serviceAccounts/hop@p.iam");
        assert_eq!(delegate_name("projects/-/serviceAccounts/hop@p.iam"), "projects/-/serviceAccounts/hop@p.iam");
    }
}
