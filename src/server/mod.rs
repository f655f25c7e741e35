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
mod listener;
pub mod tls;
pub mod web_config;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

use crate::metrics::{Metrics, render_audit};
use crate::report::Report;
use crate::state::{Published, Store};
use bodies::{PerPublished, SharedBody};

pub use endpoint::Endpoint;

#[derive(Clone)]
pub struct AppState {
    metrics: Arc<Metrics>,
    state: Arc<Store>,
    metrics_bodies: Arc<PerPublished>,
    report_bodies: Arc<PerPublished>,
}

impl AppState {
    pub fn new(metrics: Arc<Metrics>, state: Arc<Store>) -> AppState {
        AppState { metrics, state, metrics_bodies: Arc::default(), report_bodies: Arc::default() }
    }
}

pub fn router(app: AppState, auth: Arc<basic_auth::BasicAuth>) -> Router {
    Router::new()
        .route("/", get(landing))
        .route("/metrics", get(metrics))
        .route("/report", get(report))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(axum::middleware::from_fn_with_state(auth, basic_auth::require))
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

/// The process's counters, rendered now, then the audit results, rendered once per cycle.
async fn metrics(State(app): State<AppState>) -> Response {
    // Counters first: a cycle is counted only once its results are published, so results
    // loaded after the counters are at least as new as the cycle count says.
    let process = Bytes::from(app.metrics.render_counters());
    let published = app.state.load();
    let audit = app.metrics_bodies.get(&published, |p| render_audit(p).into_bytes()).await;
    shared_response("text/plain; version=0.0.4; charset=utf-8", [process, audit])
}

async fn report(State(app): State<AppState>) -> Response {
    let published = app.state.load();
    shared_response("application/json", [app.report_bodies.get(&published, render_report).await])
}

fn render_report(published: &Published) -> Vec<u8> {
    serde_json::to_vec_pretty(&Report::from_published(published)).unwrap_or_default()
}

fn shared_response<const N: usize>(content_type: &'static str, parts: [Bytes; N]) -> Response {
    ([(CONTENT_TYPE, content_type)], Body::new(SharedBody::new(parts))).into_response()
}
