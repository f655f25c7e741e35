//! The one HTTP client every Google API call goes through: auth, bounded concurrency,
//! timeouts, retries with jittered exponential backoff, size limits, paging, metrics.

use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use prometheus::{CounterVec, IntCounterVec};
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use tokio::sync::Semaphore;

use super::auth::Tokens;
use super::error::ApiError;
use crate::config::RateLimits;
use crate::error::error_chain;
use crate::google::Page;
use crate::google::status::RpcStatus;
use crate::inventory::Api;

/// Pages of one listing before we call it a loop (1000 items a page: a million resources).
const MAX_PAGES: usize = 1000;
/// No page of any list we read comes near this; a larger body is refused, not buffered.
const MAX_BODY_BYTES: usize = 64 << 20;
/// A server asking for a longer pause than this gets this: the cycle must end.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);
/// How long a 429 without a delay of its own pauses its API for everyone.
const THROTTLE_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// All sleeps of one call together stay under this.
    pub total_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            min_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            total_delay: Duration::from_secs(120),
        }
    }
}

pub struct ApiClient {
    http: reqwest::Client,
    tokens: Tokens,
    permits: Semaphore,
    request_timeout: Duration,
    retry: RetryPolicy,
    pacers: HashMap<Api, Pacer>,
    metrics: ClientMetrics,
}

/// What the client counts, by API. A one-shot `audit` keeps them unregistered; the daemon
/// registers them.
#[derive(Clone)]
pub struct ClientMetrics {
    pub requests: IntCounterVec,
    pub retries: IntCounterVec,
    pub throttle_wait_seconds: CounterVec,
}

impl Default for ClientMetrics {
    fn default() -> Self {
        ClientMetrics::new()
    }
}

impl ClientMetrics {
    pub fn new() -> ClientMetrics {
        let opts = prometheus::Opts::new;
        let requests = IntCounterVec::new(
            opts(
                "binauthz_api_requests_total",
                "Google API requests made, by API and HTTP status code (or timeout/transport/invalid_response; token failures under api=\"token\", code=\"error\").",
            ),
            &["api", "code"],
        )
        .expect("a valid metric");
        let retries = IntCounterVec::new(
            opts("binauthz_api_retries_total", "Google API requests retried (throttled, server errors, timeouts)."),
            &["api"],
        )
        .expect("a valid metric");
        let throttle_wait_seconds = CounterVec::new(
            opts(
                "binauthz_api_throttle_wait_seconds_total",
                "Time requests waited for their API's rate limit (token bucket and 429 pauses).",
            ),
            &["api"],
        )
        .expect("a valid metric");
        // Zero from the start for every API, so the first retry or wait is an increase.
        for api in Api::ALL {
            retries.with_label_values(&[api.as_str()]);
            throttle_wait_seconds.with_label_values(&[api.as_str()]);
        }
        ClientMetrics { requests, retries, throttle_wait_seconds }
    }

    pub fn register(&self, registry: &prometheus::Registry) {
        for c in [
            Box::new(self.requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.retries.clone()),
            Box::new(self.throttle_wait_seconds.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
    }
}

/// Paces one API: a token bucket for the configured rate, and a pause that a 429 extends, so
/// every caller of a throttled API backs off together instead of hammering it.
struct Pacer {
    bucket: DefaultDirectRateLimiter,
    paused_until: Mutex<Option<Instant>>,
}

impl Pacer {
    fn new(per_minute: u32) -> Pacer {
        let rate = NonZeroU32::new(per_minute.max(1)).expect("at least one");
        Pacer { bucket: RateLimiter::direct(Quota::per_minute(rate)), paused_until: Mutex::new(None) }
    }

    /// Waits for this API's turn; returns how long that took.
    async fn wait(&self) -> Duration {
        let started = Instant::now();
        let pause = *self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(until) = pause {
            tokio::time::sleep_until(until.into()).await;
        }
        self.bucket.until_ready().await;
        started.elapsed()
    }

    fn pause_for(&self, delay: Duration) {
        let until = Instant::now() + delay;
        let mut paused = self.paused_until.lock().unwrap_or_else(|p| p.into_inner());
        if paused.is_none_or(|p| p < until) {
            *paused = Some(until);
        }
    }
}

/// One request, as `attempt` sends it (again, on a retry).
struct Call<'a> {
    api: Api,
    method: Method,
    url: &'a str,
    query: &'a [(&'a str, &'a str)],
    body: Option<&'a [u8]>,
    timeout: Duration,
}

impl Call<'_> {
    /// `GET https://...`: how errors and logs name the call (never with the query or body).
    fn endpoint(&self) -> String {
        format!("{} {}", self.method, self.url)
    }
}

/// Everything one listing returned, over all its pages.
#[derive(Debug)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub unreachable: Vec<String>,
}

/// The settings of the one HTTP client Google is reached with, API calls and token requests
/// alike. Proxies come from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) when it is
/// built. Redirects are not followed: Google's APIs and token endpoints do not redirect, and a
/// 307/308 would re-send a refresh token or subject token to another host.
pub fn http_builder(request_timeout: Duration) -> reqwest::ClientBuilder {
    // reqwest is built without a default crypto provider (see Cargo.toml): ring it is.
    // Already installed (by main, or an earlier client) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("binauthz-auditor/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(request_timeout.min(Duration::from_secs(10)))
        .timeout(request_timeout)
        .redirect(reqwest::redirect::Policy::none())
}

impl ApiClient {
    /// `http` comes from `http_builder`; `tokens` were built on the same client.
    pub fn new(
        http: reqwest::Client,
        tokens: Tokens,
        concurrency: usize,
        request_timeout: Duration,
        retry: RetryPolicy,
        rate_limits: RateLimits,
        metrics: ClientMetrics,
    ) -> Result<Arc<ApiClient>, String> {
        let pacers = HashMap::from([
            (Api::Run, Pacer::new(rate_limits.run)),
            (Api::Functions, Pacer::new(rate_limits.functions)),
            (Api::Binaryauthorization, Pacer::new(rate_limits.binaryauthorization)),
            (Api::Resourcemanager, Pacer::new(rate_limits.resourcemanager)),
            (Api::Asset, Pacer::new(rate_limits.asset)),
            (Api::Containeranalysis, Pacer::new(rate_limits.containeranalysis)),
        ]);
        Ok(Arc::new(ApiClient {
            http,
            tokens,
            permits: Semaphore::new(concurrency),
            request_timeout,
            retry,
            pacers,
            metrics,
        }))
    }

    /// GET `url` and decode it as `T`, retrying what is worth retrying.
    pub async fn get<T: DeserializeOwned>(&self, api: Api, url: &str, query: &[(&str, &str)]) -> Result<T, ApiError> {
        let call = Call { api, method: Method::GET, url, query, body: None, timeout: self.request_timeout };
        let endpoint = call.endpoint();
        let body = self.send(&call, &endpoint).await?;
        decode(&body, api, &endpoint)
    }

    /// POST `body` as JSON to `url` and decode the answer as `T`, retrying what is worth
    /// retrying: only for calls that are safe to repeat (Pub/Sub's pull, acknowledge and
    /// modifyAckDeadline are). `timeout` replaces the request timeout for calls the server
    /// may hold open on purpose (a long poll).
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        api: Api,
        url: &str,
        body: &B,
        timeout: Option<Duration>,
    ) -> Result<T, ApiError> {
        let json = serde_json::to_vec(body).expect("request bodies serialise");
        let timeout = timeout.unwrap_or(self.request_timeout);
        let call = Call { api, method: Method::POST, url, query: &[], body: Some(&json), timeout };
        let endpoint = call.endpoint();
        let answer = self.send(&call, &endpoint).await?;
        decode(&answer, api, &endpoint)
    }

    async fn send(&self, call: &Call<'_>, endpoint: &str) -> Result<Vec<u8>, ApiError> {
        let api = call.api;
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries)
            .with_total_delay(Some(self.retry.total_delay))
            .with_jitter();
        (|| self.attempt(call, endpoint))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ApiError::is_retryable)
            .adjust(|err, delay| delay.map(|d| err.retry_after().map_or(d, |asked| asked.min(MAX_SERVER_DELAY))))
            .notify(|err, delay| {
                self.metrics.retries.with_label_values(&[api.as_str()]).inc();
                tracing::debug!(%err, ?delay, "retrying");
            })
            .await
    }

    /// Every page of a list, following `Page::TOKEN_PARAM` until the server stops sending one.
    pub async fn list<P: Page>(
        &self,
        api: Api,
        url: &str,
        query: &[(&str, &str)],
    ) -> Result<Listing<P::Item>, ApiError> {
        let mut listing = Listing { items: Vec::new(), unreachable: Vec::new() };
        let mut seen_tokens = HashSet::new();
        let mut token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut params = query.to_vec();
            if let Some(t) = &token {
                params.push((P::TOKEN_PARAM, t));
            }
            let page: P = self.get(api, url, &params).await?;
            listing.unreachable.extend(page.unreachable().iter().cloned());
            let next = page.next_page_token().map(str::to_owned);
            listing.items.extend(page.into_items());
            match next {
                None => return Ok(listing),
                Some(t) if !seen_tokens.insert(t.clone()) => {
                    return Err(ApiError::Pagination {
                        endpoint: format!("GET {url}"),
                        message: "the server repeated a page token; stopped to avoid a loop".into(),
                    });
                }
                Some(t) => token = Some(t),
            }
        }
        Err(ApiError::Pagination { endpoint: format!("GET {url}"), message: format!("more than {MAX_PAGES} pages") })
    }

    async fn attempt(&self, call: &Call<'_>, endpoint: &str) -> Result<Vec<u8>, ApiError> {
        let api = call.api;
        if let Some(pacer) = self.pacers.get(&api) {
            let waited = pacer.wait().await;
            self.metrics.throttle_wait_seconds.with_label_values(&[api.as_str()]).inc_by(waited.as_secs_f64());
        }
        let result = self.attempt_uncounted(call, endpoint).await;
        let code = match &result {
            Ok(_) => Some("200".to_owned()),
            Err(e) => e.metric_code(),
        };
        if let Some(code) = code {
            self.metrics.requests.with_label_values(&[api.as_str(), &code]).inc();
        }
        if let (Err(e @ ApiError::Status { code: 429, .. }), Some(pacer)) = (&result, self.pacers.get(&api)) {
            pacer.pause_for(e.retry_after().unwrap_or(THROTTLE_PAUSE));
        }
        result
    }

    async fn attempt_uncounted(&self, call: &Call<'_>, endpoint: &str) -> Result<Vec<u8>, ApiError> {
        // The permit comes first: a token fetched before a long wait in the queue could expire
        // before it is used. Pub/Sub's pull is a long poll the server holds open for up to a
        // minute or more: it runs beside the bounded requests, never in place of one.
        let _permit = match call.api {
            Api::Pubsub => None,
            _ => Some(self.permits.acquire().await.expect("the semaphore is never closed")),
        };
        // Tokens come from a cache, so only failures are worth counting.
        let token = self.tokens.token().await.inspect_err(|_| {
            self.metrics.requests.with_label_values(&[Api::Token.as_str(), "error"]).inc();
        })?;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                ApiError::Timeout { endpoint: endpoint.to_owned(), after: call.timeout }
            } else {
                ApiError::Transport { endpoint: endpoint.to_owned(), message: error_chain(&e.without_url()) }
            }
        };
        let mut request =
            self.http.request(call.method.clone(), call.url).query(call.query).timeout(call.timeout).bearer_auth(token);
        if let Some(body) = call.body {
            request = request.header(CONTENT_TYPE, "application/json").body(body.to_vec());
        }
        if let Some(project) = self.tokens.quota_project() {
            request = request.header("x-goog-user-project", project);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        let header_delay = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(ApiError::Decode {
                    endpoint: endpoint.to_owned(),
                    message: format!("body larger than {} MiB", MAX_BODY_BYTES >> 20),
                });
            }
            body.extend_from_slice(&chunk);
        }
        if status.is_success() {
            return Ok(body);
        }
        Err(error_from_status(endpoint, call.api, status.as_u16(), &body, header_delay))
    }
}

fn error_from_status(endpoint: &str, api: Api, code: u16, body: &[u8], header_delay: Option<Duration>) -> ApiError {
    match RpcStatus::parse(body) {
        Some(status) if code == 403 && status.is_service_disabled() => {
            ApiError::ServiceDisabled { endpoint: endpoint.to_owned(), api }
        }
        Some(status) => ApiError::Status {
            endpoint: endpoint.to_owned(),
            code,
            retry_after: header_delay.or(status.retry_delay()),
            status: status.status.clone(),
            message: shorten(&status.message),
        },
        None => ApiError::Status {
            endpoint: endpoint.to_owned(),
            code,
            status: String::new(),
            message: format!("non-JSON error body: {}", shorten(&String::from_utf8_lossy(body))),
            retry_after: header_delay,
        },
    }
}

/// Decodes a 2xx body. A 200 that carries `{"error": ...}` is an error, not an empty list.
fn decode<T: DeserializeOwned>(body: &[u8], api: Api, endpoint: &str) -> Result<T, ApiError> {
    #[derive(serde::Deserialize)]
    struct Probe {
        error: Option<IgnoredAny>,
    }
    if crate::google::status::is_json_object(body)
        && let Ok(Probe { error: Some(_) }) = serde_json::from_slice::<Probe>(body)
    {
        return Err(error_from_status(endpoint, api, 200, body, None));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::Decode { endpoint: endpoint.to_owned(), message: e.to_string() })
}

fn shorten(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &flat[..i]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_429_pauses_every_caller_of_that_api() {
        let pacer = Pacer::new(6000);
        assert!(pacer.wait().await < Duration::from_millis(50));
        pacer.pause_for(Duration::from_millis(300));
        assert!(pacer.wait().await >= Duration::from_millis(290), "the pause applies to the next caller");
        pacer.pause_for(Duration::from_millis(10));
        assert!(pacer.wait().await < Duration::from_millis(250), "a new short pause is short");
    }

    #[tokio::test]
    async fn the_bucket_paces_requests_past_its_burst() {
        let pacer = Pacer::new(60); // 1 a second, a burst of 60
        for _ in 0..60 {
            pacer.wait().await;
        }
        assert!(pacer.wait().await >= Duration::from_millis(500), "the 61st request waits for a token");
    }

    #[test]
    fn a_200_with_an_error_body_is_an_error() {
        let body = br#"{"error":{"code":500,"message":"backend","status":"INTERNAL"}}"#;
        let err = decode::<serde_json::Value>(body, Api::Run, "GET x").unwrap_err();
        assert!(matches!(err, ApiError::Status { code: 200, .. }), "{err:?}");
    }

    #[test]
    fn wrong_types_are_decode_errors_naming_the_endpoint() {
        let err = decode::<crate::google::run_v2::ListServicesResponse>(br#"{"services":"none"}"#, Api::Run, "GET u")
            .unwrap_err();
        assert!(err.to_string().starts_with("GET u: unreadable response: invalid type"), "{err}");
    }

    #[test]
    fn html_error_pages_are_summarised_on_one_line() {
        let err = error_from_status("GET u", Api::Run, 502, b"<html>\n<body>Bad\n gateway</body></html>", None);
        assert_eq!(err.to_string(), "GET u: HTTP 502: non-JSON error body: <html> <body>Bad gateway</body></html>");
        assert!(err.is_retryable());
    }
}
