//! A service-account key: the OAuth 2.0 JWT-bearer grant (RFC 7523) at the key's `token_uri`,
//! signed with gcp_auth's RS256 `Signer` but sent through our client (gcp_auth's own ignores
//! proxies and has no timeout).

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gcp_auth::CustomServiceAccount;
use reqwest::Method;
use url::Url;

use super::cache::{CLOUD_PLATFORM, Mint, Minted};
use super::error::{AuthError, endpoint};
use super::http::{OAuthToken, TokenHttp, Via};
use crate::error::error_chain;

pub struct ServiceAccount {
    pub email: String,
    pub token_uri: Url,
    pub key_id: Option<String>,
    /// Holds the private key; only its `signer()` is used.
    pub key: Box<CustomServiceAccount>,
}

impl ServiceAccount {
    /// A signed assertion: RFC 7515 base64url without padding, which strict JWT libraries
    /// demand (gcp_auth pads).
    fn assertion(&self) -> Result<String, AuthError> {
        let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.key_id {
            header["kid"] = serde_json::json!(kid);
        }
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": self.email,
            "scope": CLOUD_PLATFORM,
            "aud": self.token_uri.as_str(),
            "iat": now,
            "exp": now + 3600,
        });
        let signed =
            format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
        let signature = self.key.signer().sign(signed.as_bytes()).map_err(|e| {
            AuthError::permanent(format!("cannot sign with the key of {}: {}", self.email, error_chain(&e)))
        })?;
        Ok(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)))
    }
}

#[async_trait]
impl Mint for ServiceAccount {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError> {
        let assertion = self.assertion()?;
        let form = [("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"), ("assertion", assertion.as_str())];
        let answer: OAuthToken =
            http.json(Method::POST, &self.token_uri, Via::for_url(&self.token_uri), |r| r.form(&form), &[]).await?;
        answer.minted(&self.what())
    }

    fn what(&self) -> String {
        endpoint("POST", &self.token_uri)
    }
}
