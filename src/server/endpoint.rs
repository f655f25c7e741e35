//! The endpoint as the daemon sees it: started once, re-applied on every reload, stopped at
//! the end. A reload that changes what a connection is held to (address, TLS or not, client
//! certificates, HTTP/2, limits) starts a new accept loop and closes the old connections once
//! their request in flight is answered; a certificate rotation, new users, response headers
//! or rate limit apply in place.
//! When the new settings cannot be served (the address cannot be bound), nothing changes and
//! the reload fails.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, ServerLimits};
use crate::error::AppError;
use crate::metrics::Metrics;
use crate::server::basic_auth::BasicAuth;
use crate::server::connection::Shared;
use crate::server::fds;
use crate::server::listener::Serving;
use crate::server::tls::TlsSwitch;
use crate::server::web_config::{TlsPolicy, WebConfig};
use crate::server::{AppState, HttpRules, router};
use crate::state::Store;

pub struct Endpoint {
    app: axum::Router,
    auth: Arc<BasicAuth>,
    rules: Arc<HttpRules>,
    listener: Arc<TcpListener>,
    fd_limit: Option<u64>,
    settings: Settings,
    serving: Serving,
}

/// Everything an accept loop and its connections are started with, bar certificates and users.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Settings {
    listen: SocketAddr,
    tls: Option<TlsPolicy>,
    http2: bool,
    limits: ServerLimits,
    /// The connection cap in force (see fds::connection_cap).
    cap: usize,
}

impl Settings {
    fn of(config: &Config, web: &WebConfig, fd_limit: Option<u64>) -> Settings {
        let limits = config.server.limits;
        let cap = fds::connection_cap(limits.max_connections, fd_limit, fds::reserved(config.gcp.concurrency));
        Settings { listen: config.server.listen, tls: web.tls_policy.clone(), http2: web.http2, limits, cap }
    }
}

impl Endpoint {
    /// Binds `server.listen` and starts serving.
    pub async fn start(
        config: &Config,
        web: &WebConfig,
        metrics: Arc<Metrics>,
        state: Arc<Store>,
    ) -> Result<Endpoint, AppError> {
        let fd_limit = fds::raise_soft_limit();
        let settings = Settings::of(config, web, fd_limit);
        let listener = Arc::new(bind(settings.listen).await?);
        let auth = Arc::new(BasicAuth::start());
        auth.set_users(web.users.clone());
        let rules = Arc::new(HttpRules::default());
        rules.set(web);
        let app = router(AppState::new(metrics, state), Arc::clone(&auth), Arc::clone(&rules));
        let serving = Serving::start(Arc::clone(&listener), shared(&app, web, &settings), settings.cap);
        let endpoint = Endpoint { app, auth, rules, listener, fd_limit, settings, serving };
        endpoint.explain(config, fd_limit);
        Ok(endpoint)
    }

    /// Serves `web` and `config.server` from now on, or changes nothing and says why not.
    pub async fn apply(&mut self, config: &Config, web: &WebConfig, drain: Duration) -> Result<(), String> {
        let settings = Settings::of(config, web, self.fd_limit);
        if settings == self.settings {
            if let (Some(switch), Some(tls)) = (&self.serving.shared.tls, &web.tls) {
                switch.store(Arc::clone(tls));
            }
            self.auth.set_users(web.users.clone());
            self.rules.set(web);
            return Ok(());
        }
        let listener = if settings.listen == self.settings.listen {
            Arc::clone(&self.listener)
        } else {
            Arc::new(bind(settings.listen).await.map_err(|e| format!("server.listen: {e}"))?)
        };
        // The old connections must not go on under the old rules (plain HTTP once TLS is
        // required, say): no new ones, and each closes once its request in flight is answered.
        self.serving.stop_accepting();
        self.auth.set_users(web.users.clone());
        self.rules.set(web);
        let next = Serving::start(Arc::clone(&listener), shared(&self.app, web, &settings), settings.cap);
        let old = std::mem::replace(&mut self.serving, next);
        tokio::spawn(old.retire(drain));
        tracing::info!(
            listen = %settings.listen,
            tls = settings.tls.is_some(),
            "the HTTP listener now serves the reloaded settings; connections made under the old ones are closing"
        );
        self.listener = listener;
        self.settings = settings;
        self.explain(config, self.fd_limit);
        Ok(())
    }

    /// `scheme://address/path`, as clients reach it now (the bound address: port 0 in the
    /// configuration becomes the port the system chose).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.settings.tls.is_some() { "https" } else { "http" };
        let address = self.listener.local_addr().unwrap_or(self.settings.listen);
        format!("{scheme}://{address}{path}")
    }

    /// Resolves only if serving broke down for good.
    pub async fn failed(&mut self) -> String {
        self.serving.failed().await
    }

    /// Stops accepting, waits up to `drain` for open connections, closes the rest.
    pub async fn shutdown(self, drain: Duration) {
        self.serving.retire(drain).await;
    }

    fn explain(&self, config: &Config, fd_limit: Option<u64>) {
        let s = &self.settings;
        if !s.listen.ip().is_loopback() && s.tls.is_none() && !self.auth.enabled() {
            tracing::warn!(listen = %s.listen, "serving metrics and the report on a non-loopback address without TLS or authentication; see [server] web_config");
        }
        if s.cap < s.limits.max_connections {
            tracing::warn!(
                max_connections = s.limits.max_connections,
                in_force = s.cap,
                descriptor_limit = fd_limit.unwrap_or_default(),
                reserved = fds::reserved(config.gcp.concurrency),
                "server.max_connections lowered so that inbound connections cannot use the descriptors the audit needs; raise LimitNOFILE= (ulimit -n)"
            );
        }
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, AppError> {
    TcpListener::bind(addr).await.map_err(|source| AppError::Bind { addr, source })
}

fn shared(app: &axum::Router, web: &WebConfig, settings: &Settings) -> Arc<Shared> {
    Arc::new(Shared {
        app: app.clone(),
        limits: settings.limits,
        tls: web.tls.as_ref().map(|config| Arc::new(TlsSwitch::new(Arc::clone(config)))),
    })
}
