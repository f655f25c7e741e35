//! Token requests on the daemon's one `reqwest::Client`, the same one API calls use: the same
//! proxy settings (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`, read once when it is built), TLS
//! roots, timeouts and connection pool. Link-local metadata services are the one exception:
//! they are reached directly (see `Via`). Bodies are bounded, transient failures retried, and
//! error messages carry the endpoint, status and Google's error code and message only.

use std::net::Ipv6Addr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::cache::Minted;
use super::error::{AuthError, endpoint, serde_message, shorten};
use super::secret::{Secret, scrub};
use crate::error::error_chain;

/// No token response comes near this; anything larger is refused, not buffered.
const MAX_BODY_BYTES: usize = 64 << 10;
/// A token response without `expires_in` is assumed to last this long: an unknown lifetime
/// then costs an early refresh, never calls made with an expired token.
const ASSUMED_LIFETIME: u64 = 600;

/// Which client a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The API client: honours the proxy variables exactly like API calls.
    Shared,
    /// No proxy. Only for link-local metadata services (the GCE metadata server, AWS IMDS):
    /// through a proxy they would fail, or worse answer with the proxy host's own identity.
    /// Google's Go and Rust libraries do the same.
    Direct,
}

impl Via {
    /// `Direct` for link-local hosts (169.254.0.0/16, fe80::/10, AWS's fd00:ec2::254), else `Shared`.
    pub fn for_url(url: &Url) -> Via {
        let aws_v6 = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
        match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_link_local() => Via::Direct,
            Some(url::Host::Ipv6(ip)) if (ip.segments()[0] & 0xffc0) == 0xfe80 || ip == aws_v6 => Via::Direct,
            _ => Via::Shared,
        }
    }
}

#[derive(Clone)]
pub struct TokenHttp {
    shared: reqwest::Client,
    /// Built on first use with the API client's settings minus the proxy; most setups never
    /// need it.
    direct: Arc<OnceLock<Result<reqwest::Client, String>>>,
    direct_builder: Arc<dyn Fn() -> reqwest::ClientBuilder + Send + Sync>,
    retry: ExponentialBuilder,
}

/// A 2xx answer.
pub struct Answer {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl TokenHttp {
    /// `shared` is the API client; `builder` makes a client with the same settings, from which
    /// the direct one is built with `.no_proxy()`.
    pub fn new(
        shared: reqwest::Client,
        builder: impl Fn() -> reqwest::ClientBuilder + Send + Sync + 'static,
    ) -> TokenHttp {
        TokenHttp {
            shared,
            direct: Arc::new(OnceLock::new()),
            direct_builder: Arc::new(builder),
            // Two quick retries: a token request sits in front of every API call of a cycle,
            // and the whole fetch is bounded by gcp.token_timeout anyway.
            retry: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(250))
                .with_max_delay(Duration::from_secs(1))
                .with_max_times(2)
                .with_jitter(),
        }
    }

    fn client(&self, via: Via) -> Result<&reqwest::Client, AuthError> {
        match via {
            Via::Shared => Ok(&self.shared),
            Via::Direct => self
                .direct
                .get_or_init(|| {
                    (self.direct_builder)()
                        .no_proxy()
                        .build()
                        .map_err(|e| format!("cannot build the HTTP client for metadata servers: {e}"))
                })
                .as_ref()
                .map_err(|e| AuthError::permanent(e.clone())),
        }
    }

    /// Sends the request `build` makes from `method url`, retrying transient failures. `secrets`
    /// are scrubbed from anything the server says back.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        via: Via,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        secrets: &[&Secret],
    ) -> Result<Answer, AuthError> {
        let what = endpoint(method.as_str(), url);
        let client = self.client(via)?;
        let build = &build;
        let what = what.as_str();
        (|| async { once(build(client.request(method.clone(), url.clone())), what, secrets).await })
            .retry(self.retry)
            .sleep(tokio::time::sleep)
            .when(AuthError::is_transient)
            .notify(|err, delay| tracing::debug!(%err, ?delay, "retrying a token request"))
            .await
    }

    /// `send`, decoding the answer as JSON.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        url: &Url,
        via: Via,
        build: impl Fn(RequestBuilder) -> RequestBuilder,
        secrets: &[&Secret],
    ) -> Result<T, AuthError> {
        let answer = self.send(method.clone(), url, via, build, secrets).await?;
        decode(&endpoint(method.as_str(), url), &answer.body)
    }
}

async fn once(request: RequestBuilder, what: &str, secrets: &[&Secret]) -> Result<Answer, AuthError> {
    let transport = |e: reqwest::Error| {
        let kind = if e.is_timeout() { "no answer in time" } else { "cannot connect" };
        AuthError::transient(format!("{what}: {kind}: {}", error_chain(&e.without_url())))
    };
    let mut response = request.send().await.map_err(transport)?;
    let status = response.status();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(AuthError::permanent(format!("{what}: response larger than {} KiB", MAX_BODY_BYTES >> 10)));
        }
        body.extend_from_slice(&chunk);
    }
    if status.is_success() {
        return Ok(Answer { headers, body });
    }
    let message = format!("{what}: HTTP {}{}", status.as_u16(), scrub(&error_detail(&body), secrets));
    if status.as_u16() == 429 || status.is_server_error() {
        Err(AuthError::transient(message))
    } else {
        Err(AuthError::permanent(message))
    }
}

/// Google's error in either shape it uses on token endpoints — OAuth's
/// `{"error": "invalid_grant", "error_description": "…"}` or `google.rpc.Status`'s
/// `{"error": {"status": "PERMISSION_DENIED", "message": "…"}}` — as `": CODE: message"`.
/// Anything else is not quoted: an unknown body may hold anything.
fn error_detail(body: &[u8]) -> String {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        OAuth { error: String, error_description: Option<String> },
        Rpc { error: Rpc },
    }
    #[derive(Deserialize)]
    struct Rpc {
        status: Option<String>,
        message: Option<String>,
    }
    let (code, message) = match serde_json::from_slice::<Shape>(body) {
        Ok(Shape::OAuth { error, error_description }) => (error, error_description),
        Ok(Shape::Rpc { error }) => (error.status.unwrap_or_default(), error.message),
        Err(_) => return format!(" (a {}-byte body that is not Google's error format)", body.len()),
    };
    let message = message.filter(|m| !m.is_empty() && *m != code).map(|m| format!(": {m}")).unwrap_or_default();
    shorten(&format!(": {code}{message}"))
}

pub fn decode<T: DeserializeOwned>(what: &str, body: &[u8]) -> Result<T, AuthError> {
    serde_json::from_slice(body)
        .map_err(|e| AuthError::permanent(format!("{what}: unreadable response: {}", serde_message(&e))))
}

/// The OAuth 2.0 token response (RFC 6749 §5.1), as the OAuth, STS and metadata endpoints send it.
#[derive(Deserialize)]
pub struct OAuthToken {
    access_token: Secret,
    #[serde(default)]
    expires_in: Option<Seconds>,
}

impl OAuthToken {
    pub fn minted(self, what: &str) -> Result<Minted, AuthError> {
        if self.access_token.is_empty() {
            return Err(AuthError::permanent(format!("{what}: the response has an empty access_token")));
        }
        Ok(Minted::lasting(self.access_token, self.expires_in.map_or(ASSUMED_LIFETIME, |s| s.0)))
    }
}

/// Seconds as a JSON number or, from some STS deployments, a string ("3600").
struct Seconds(u64);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(f64),
            Text(String),
        }
        let seconds = match Either::deserialize(d)? {
            Either::Number(n) => n,
            Either::Text(t) => t.trim().parse().map_err(|_| serde::de::Error::custom("expires_in is not a number"))?,
        };
        if !seconds.is_finite() || seconds < 0.0 {
            return Err(serde::de::Error::custom("expires_in is negative"));
        }
        Ok(Seconds(seconds.min(u32::MAX as f64) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_local_hosts_go_direct_and_everything_else_through_the_proxy() {
        for (url, via) in [
            ("http://169.254.169.254/computeMetadata/v1/", Via::Direct),
            ("http://[fd00:ec2::254]/latest/api/token", Via::Direct),
            ("http://[fe80::1]/x", Via::Direct),
            ("http://127.0.0.1:8080/token", Via::Shared),
            ("https://oauth2.googleapis.com/token", Via::Shared),
            ("http://metadata.google.internal/x", Via::Shared),
        ] {
            assert_eq!(Via::for_url(&Url::parse(url).unwrap()), via, "{url}");
        }
    }

    #[test]
    fn google_errors_are_quoted_and_anything_else_is_not() {
        let oauth = br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        assert_eq!(error_detail(oauth), ": invalid_grant: Token has been expired or revoked.");
        let rpc = br#"{"error":{"code":403,"status":"PERMISSION_DENIED","message":"Permission 'iam.serviceAccounts.getAccessToken' denied"}}"#;
        assert_eq!(error_detail(rpc), ": PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied");
        assert_eq!(error_detail(b"<html>secret</html>"), " (a 19-byte body that is not Google's error format)");
    }

    #[test]
    fn expires_in_may_be_a_number_or_a_string() {
        for (body, ok) in [
            (r#"{"access_token":"t","expires_in":3599}"#, true),
            (r#"{"access_token":"t","expires_in":"3600"}"#, true),
            (r#"{"access_token":"t"}"#, true),
            (r#"{"access_token":"t","expires_in":-1}"#, false),
            (r#"{"access_token":"t","expires_in":"soon"}"#, false),
        ] {
            assert_eq!(serde_json::from_str::<OAuthToken>(body).is_ok(), ok, "{body}");
        }
        let empty: OAuthToken = serde_json::from_str(r#"{"access_token":""}"#).unwrap();
        assert!(empty.minted("POST x").is_err());
    }
}
