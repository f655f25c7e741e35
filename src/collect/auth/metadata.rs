//! The metadata server's identity (GCE, GKE Workload Identity, Cloud Run): the default service
//! account's token from `http://{GCE_METADATA_HOST or 169.254.169.254}/computeMetadata/v1/`.
//! Always reached directly, never through a proxy (see `Via::Direct`), and the answer must carry
//! `Metadata-Flavor: Google`, so a proxy or captive portal answering instead is caught.

use async_trait::async_trait;
use reqwest::Method;
use url::Url;

use super::cache::{Mint, Minted};
use super::error::{AuthError, endpoint};
use super::http::{OAuthToken, TokenHttp, Via, decode};

pub const DEFAULT_HOST: &str = "169.254.169.254";

pub struct Metadata {
    token_url: Url,
}

impl Metadata {
    /// `host` is `host[:port]` without a scheme, as GCE_METADATA_HOST is.
    pub fn new(host: &str) -> Result<Metadata, String> {
        let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/token");
        let token_url = Url::parse(&url)
            .ok()
            .filter(|u| u.path() == "/computeMetadata/v1/instance/service-accounts/default/token")
            .ok_or_else(|| format!("GCE_METADATA_HOST {host:?} is not host[:port]"))?;
        Ok(Metadata { token_url })
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.token_url.authority())
    }
}

#[async_trait]
impl Mint for Metadata {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError> {
        let what = self.what();
        // No `scopes` query: the VM's access scopes apply, as with Google's Go and Rust libraries.
        let answer = http
            .send(Method::GET, &self.token_url, Via::Direct, |r| r.header("Metadata-Flavor", "Google"), &[])
            .await?;
        if answer.headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
            return Err(AuthError::permanent(format!(
                "{what}: the answer lacks Metadata-Flavor: Google; this is not a metadata server"
            )));
        }
        decode::<OAuthToken>(&what, &answer.body)?.minted(&what)
    }

    fn what(&self) -> String {
        endpoint("GET", &self.token_url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_is_host_and_port_only() {
        assert_eq!(Metadata::new("127.0.0.1:8080").unwrap().base(), "http://127.0.0.1:8080");
        assert_eq!(Metadata::new(DEFAULT_HOST).unwrap().base(), "http://169.254.169.254");
        assert!(Metadata::new("http://x/").is_err());
        assert!(Metadata::new("x/y").is_err());
    }
}
