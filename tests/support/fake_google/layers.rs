//! What every request passes through before its handler, one job per layer, outermost first:
//! `CONNECT` tunnels, in-flight counting, the request log, latency and faults,
//! authentication, recorded bodies, and the record of writes.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde_json::Value;

use super::Shared;
use super::shapes::{google_error, json};
use super::world::{Exchange, Fault, LoggedRequest};
use crate::support::fake_auth::{bearer, is_credential_path};

/// Wraps `router` in every layer (the last one added runs first).
pub fn around(router: Router<Shared>, world: &Shared) -> Router<Shared> {
    let state = || Arc::clone(world);
    router
        .layer(middleware::from_fn_with_state(state(), record_writes))
        .layer(middleware::from_fn_with_state(state(), answer_recorded))
        .layer(middleware::from_fn_with_state(state(), authenticate))
        .layer(middleware::from_fn_with_state(state(), latency_and_faults))
        .layer(middleware::from_fn_with_state(state(), log))
        .layer(middleware::from_fn_with_state(state(), count_in_flight))
        .layer(middleware::from_fn_with_state(state(), tunnel_connect))
}

/// gcloud's gRPC reaches the fake through its proxy setting: `CONNECT` is piped to the
/// gRPC bridge, never answered here.
async fn tunnel_connect(State(world): State<Shared>, request: Request, next: Next) -> Response {
    if request.method() != Method::CONNECT {
        return next.run(request).await;
    }
    let target = world.lock().unwrap().behaviour.connect_to;
    crate::support::gcloud_fake::tunnel(request, target)
}

async fn count_in_flight(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let _in_flight = InFlight::enter(&world, request.uri().path());
    next.run(request).await
}

/// Counts a request in flight on its path for as long as it lives.
struct InFlight {
    world: Shared,
    path: String,
}

impl InFlight {
    fn enter(world: &Shared, path: &str) -> InFlight {
        let mut w = world.lock().unwrap();
        let now = w.seen.in_flight.entry(path.to_owned()).or_default();
        *now += 1;
        let now = *now;
        let max = w.seen.max_in_flight.entry(path.to_owned()).or_default();
        *max = (*max).max(now);
        InFlight { world: Arc::clone(world), path: path.to_owned() }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut w) = self.world.lock()
            && let Some(n) = w.seen.in_flight.get_mut(&self.path)
        {
            *n -= 1;
        }
    }
}

async fn log(State(world): State<Shared>, request: Request, next: Next) -> Response {
    {
        let mut w = world.lock().unwrap();
        let identity = bearer(request.headers()).and_then(|t| w.seen.identity(&t));
        w.seen.requests.push(logged(&request, identity));
    }
    next.run(request).await
}

fn logged(request: &Request, identity: Option<String>) -> LoggedRequest {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    LoggedRequest {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
        query: url::form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()).into_owned().collect(),
        identity,
        user_project: header("x-goog-user-project"),
    }
}

/// The world's latency, then the first fault matching the path (with its query) that has
/// uses left: its delay, then its canned answer if it has one.
async fn latency_and_faults(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let path_and_query = request.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let (latency, fault) = {
        let mut w = world.lock().unwrap();
        let fault = w.behaviour.faults.iter_mut().find(|f| path_and_query.contains(&f.matching) && f.times != Some(0));
        let fault = fault.map(|f| {
            if let Some(n) = f.times.as_mut() {
                *n -= 1;
            }
            f.clone()
        });
        (w.behaviour.latency, fault)
    };
    tokio::time::sleep(latency).await;
    if let Some(fault) = fault {
        tokio::time::sleep(fault.delay).await;
        if let Some(status) = fault.status {
            return canned(fault, status);
        }
    }
    next.run(request).await
}

fn canned(fault: Fault, status: u16) -> Response {
    let body = match fault.trickle {
        None => Body::from(fault.body),
        Some(gap) => Body::from_stream(trickled(fault.body.into_bytes(), gap)),
    };
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::from_u16(status).unwrap();
    for (name, value) in fault.headers {
        response.headers_mut().insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
    }
    response
}

/// `bytes` one at a time, `gap` apart.
fn trickled(
    bytes: Vec<u8>,
    gap: Duration,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    futures_util::stream::unfold(bytes, move |rest| async move {
        if rest.is_empty() {
            return None;
        }
        tokio::time::sleep(gap).await;
        let (first, rest) = rest.split_at(1);
        Some((Ok(first.to_vec()), rest.to_vec()))
    })
}

/// A fresh token this fake issued, unless the path authenticates in its own way (the
/// credential endpoints) or the world lets anonymous callers in.
async fn authenticate(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let authorized = {
        let w = world.lock().unwrap();
        let bearer = bearer(request.headers());
        is_credential_path(request.uri().path())
            || (w.behaviour.anonymous_ok && bearer.is_none())
            || bearer.is_some_and(|t| w.fresh(&t))
    };
    if !authorized {
        return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.", None);
    }
    next.run(request).await
}

/// A GET of a path the estate holds a recorded body for gets that body.
async fn answer_recorded(State(world): State<Shared>, request: Request, next: Next) -> Response {
    let recorded = (request.method() == Method::GET)
        .then(|| world.lock().unwrap().estate.recorded.get(request.uri().path()).cloned())
        .flatten();
    match recorded {
        Some(body) => json(body),
        None => next.run(request).await,
    }
}

/// Keeps both bodies of every request that is not a GET.
async fn record_writes(State(world): State<Shared>, request: Request, next: Next) -> Response {
    if request.method() == Method::GET {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
    let response = next.run(Request::from_parts(parts, Body::from(bytes.clone()))).await;
    let (parts, body) = response.into_parts();
    let answer = axum::body::to_bytes(body, 16 << 20).await.unwrap_or_default();
    world.lock().unwrap().seen.exchanges.push(Exchange {
        method,
        path,
        request: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        status: parts.status.as_u16(),
        response: serde_json::from_slice(&answer).unwrap_or(Value::Null),
    });
    Response::from_parts(parts, Body::from(answer))
}
