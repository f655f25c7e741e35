//! The HTTP endpoints: `/metrics`, `/report`, `/healthz` and a landing page, over plain HTTP
//! or TLS, optionally behind basic auth.

pub mod basic_auth;
pub mod tls;
pub mod web_config;

use std::future::Future;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{Metrics, SharedState};
use crate::report::Report;

#[derive(Clone)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub state: Arc<SharedState>,
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

/// Serves until `shutdown` resolves, over TLS when a configuration is given.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    tls: Option<tls::TlsSwitch>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => axum::serve(listener, app).with_graceful_shutdown(shutdown).await,
        Some(config) => {
            axum::serve(tls::TlsListener::new(listener, config)?, app).with_graceful_shutdown(shutdown).await
        }
    }
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

async fn metrics(State(app): State<AppState>) -> Response {
    // Rendering 100k series takes a while: keep it off the async workers.
    let body = tokio::task::spawn_blocking(move || app.metrics.render()).await.unwrap_or_default();
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body).into_response()
}

async fn report(State(app): State<AppState>) -> Response {
    let published = app.state.load();
    let body = tokio::task::spawn_blocking(move || {
        serde_json::to_string_pretty(&Report::from_published(&published)).unwrap_or_default()
    })
    .await
    .unwrap_or_default();
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}
