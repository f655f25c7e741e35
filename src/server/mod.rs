//! The HTTP endpoints: `/metrics`, `/report`, `/healthz` and a landing page, over plain HTTP
//! or TLS, optionally behind basic auth, hardened against hostile clients (docs/security.md).
//!
//! `endpoint` is what the daemon uses; `listener` accepts under a connection cap,
//! `connection` serves one connection under its timeouts, `bodies` shares rendered bodies.

mod attempts;
pub mod basic_auth;
mod bcrypt_gate;
mod bodies;
mod connection;
pub mod endpoint;
mod fds;
mod gzip;
mod http_rules;
mod listener;
pub mod tls;
pub mod web_config;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::metrics::{Metrics, render_audit};
use crate::report::Report;
use crate::state::{Published, Store};
use bodies::{PerPublished, SharedBody};
pub use http_rules::HttpRules;

pub use endpoint::Endpoint;

#[derive(Clone)]
pub struct AppState {
    metrics: Arc<Metrics>,
    state: Arc<Store>,
    metrics_bodies: Arc<Bodies>,
    report_bodies: Arc<Bodies>,
}

/// A body rendered once per published cycle, plain and (once a client asks) compressed.
#[derive(Default)]
struct Bodies {
    plain: PerPublished,
    gzip: PerPublished<gzip::Part>,
}

impl Bodies {
    async fn plain(&self, published: &Arc<Published>, render: fn(&Published) -> Vec<u8>) -> Bytes {
        self.plain.get(published, move |p| Bytes::from(render(p))).await.unwrap_or_default()
    }

    /// The compressed body; the plain one is rendered first if no one asked for it yet.
    async fn gzip(&self, published: &Arc<Published>, render: fn(&Published) -> Vec<u8>) -> Option<gzip::Part> {
        let plain = self.plain(published, render).await;
        self.gzip.get(published, move |_| gzip::Part::last(&plain)).await
    }
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, state: Arc<Store>) -> AppState {
        AppState { metrics, state, metrics_bodies: Arc::default(), report_bodies: Arc::default() }
    }
}

/// The endpoints, behind basic auth, behind the web config's rate limit and headers (the
/// last layer is the outermost: a request over the limit costs no password check).
pub fn router(app: AppState, auth: Arc<basic_auth::BasicAuth>, rules: Arc<HttpRules>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/report", get(report))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(auth, basic_auth::require))
        .layer(axum::middleware::from_fn_with_state(rules, http_rules::apply))
        .with_state(app)
}

async fn landing() -> Html<&'static str> {
    Html(concat!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>binauthz-auditor</title></head><body>",
        "<h1>binauthz-auditor ",
        env!("CARGO_PKG_VERSION"),
        "</h1><p>Binary Authorization coverage of Cloud Run workloads.</p><ul>",
        "<li><a href=\"metrics\">Metrics</a></li>",
        "<li><a href=\"report\">Report (JSON)</a></li>",
        "<li><a href=\"healthz\">Health</a></li>",
        "</ul></body></html>\n"
    ))
}

const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The process's counters, rendered now, then the audit results, rendered once per cycle.
async fn metrics(State(app): State<AppState>, headers: HeaderMap) -> Response {
    // Counters first: a cycle is counted only once its results are published, so results
    // loaded after the counters are at least as new as the cycle count says.
    let process = app.metrics.render_counters();
    let published = app.state.load();
    if gzip::accepted(&headers)
        && let Some(audit) = app.metrics_bodies.gzip(&published, render_audit_bytes).await
    {
        let counters = gzip::Part::leading(process.as_bytes());
        return shared_response(METRICS_TYPE, Some("gzip"), gzip::body(&[&counters, &audit]));
    }
    let audit = app.metrics_bodies.plain(&published, render_audit_bytes).await;
    shared_response(METRICS_TYPE, None, [Bytes::from(process), audit])
}

fn render_audit_bytes(published: &Published) -> Vec<u8> {
    render_audit(published).into_bytes()
}

async fn report(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let published = app.state.load();
    if gzip::accepted(&headers)
        && let Some(report) = app.report_bodies.gzip(&published, render_report).await
    {
        return shared_response("application/json", Some("gzip"), gzip::body(&[&report]));
    }
    shared_response("application/json", None, [app.report_bodies.plain(&published, render_report).await])
}

fn render_report(published: &Published) -> Vec<u8> {
    serde_json::to_vec_pretty(&Report::from_published(published)).unwrap_or_default()
}

/// `Vary: Accept-Encoding` on both forms: a cache must not hand gzip to a client that did
/// not ask for it, nor plain text to every client after one that did not.
fn shared_response<const N: usize>(
    content_type: &'static str,
    encoding: Option<&'static str>,
    parts: [Bytes; N],
) -> Response {
    let mut response =
        ([(CONTENT_TYPE, content_type), (VARY, "Accept-Encoding")], Body::new(SharedBody::new(parts))).into_response();
    if let Some(encoding) = encoding {
        response.headers_mut().insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    response
}
