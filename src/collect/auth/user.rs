//! A person's credentials (`authorized_user`, what `gcloud auth application-default login`
//! writes): the OAuth 2.0 refresh grant, form-encoded, at `{gcp.endpoints.oauth2}/token`.
//! The file's `token_uri` is ignored, as Google's Python library does: gcloud's refresh tokens
//! belong to Google's OAuth endpoint whatever the file says.

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::cache::{Mint, Minted};
use super::error::{AuthError, endpoint};
use super::http::{OAuthToken, TokenHttp, Via};
use super::secret::Secret;

pub struct User {
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
}

#[async_trait]
impl Mint for User {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError> {
        let form = [
            ("grant_type", "refresh_token"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.expose()),
            ("refresh_token", self.refresh_token.expose()),
        ];
        let secrets = [&self.client_secret, &self.refresh_token];
        let answer: OAuthToken = http
            .json(Method::POST, &self.token_url, Via::for_url(&self.token_url), |r| r.form(&form), &secrets)
            .await?;
        answer.minted(&self.what())
    }

    fn what(&self) -> String {
        endpoint("POST", &self.token_url)
    }
}
