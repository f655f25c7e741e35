//! What the web config adds to every request: its `rate_limit` (a request beyond it is
//! answered 429 before anything else is done, as exporter-toolkit does) and its
//! `http_server_config.headers` (set on every response, refusals included). A reload
//! replaces them in place; an unchanged limit keeps its bucket.

use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::server::web_config::{RateLimit, WebConfig};

#[derive(Default)]
pub struct HttpRules(RwLock<Arc<Rules>>);

#[derive(Default)]
struct Rules {
    headers: Vec<(HeaderName, HeaderValue)>,
    limit: Option<(RateLimit, Arc<DefaultDirectRateLimiter>)>,
}

impl HttpRules {
    pub fn set(&self, web: &WebConfig) {
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        let limit = web.rate_limit.and_then(|wanted| match &current.limit {
            Some((same, bucket)) if *same == wanted => Some((wanted, Arc::clone(bucket))),
            _ => bucket(wanted).map(|b| (wanted, Arc::new(b))),
        });
        *current = Arc::new(Rules { headers: web.headers.clone(), limit });
    }

    fn current(&self) -> Arc<Rules> {
        Arc::clone(&self.0.read().unwrap_or_else(|p| p.into_inner()))
    }
}

/// A full bucket of `burst` tokens, one more every `interval` (golang.org/x/time/rate's
/// `NewLimiter(Every(interval), burst)`).
fn bucket(limit: RateLimit) -> Option<DefaultDirectRateLimiter> {
    let quota = Quota::with_period(limit.interval)?.allow_burst(NonZeroU32::new(limit.burst)?);
    Some(RateLimiter::direct(quota))
}

pub async fn apply(State(rules): State<Arc<HttpRules>>, request: Request, next: Next) -> Response {
    let rules = rules.current();
    let limited = rules.limit.as_ref().is_some_and(|(_, bucket)| bucket.check().is_err());
    let mut response = if limited {
        let wait = rules.limit.as_ref().map_or(1, |(l, _)| l.interval.as_secs().max(1));
        (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, wait.to_string())], "Too Many Requests\n").into_response()
    } else {
        next.run(request).await
    };
    for (name, value) in &rules.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}
