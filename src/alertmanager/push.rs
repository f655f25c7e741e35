//! Sending to every configured Alertmanager in the background: a dead one is logged and
//! counted, and never delays an audit cycle.

use std::sync::Arc;

use prometheus::IntCounterVec;

use super::plan::Alert;
use crate::config::Alertmanager as AlertmanagerConfig;
use crate::error::error_chain;
use crate::secret_file::refuse_world_readable;

/// `binauthz_alertmanager_notifications_total{alertmanager, result}`.
pub fn notifications_counter() -> IntCounterVec {
    IntCounterVec::new(
        prometheus::Opts::new(
            "binauthz_alertmanager_notifications_total",
            "Alert pushes to each Alertmanager, by result (success or failure).",
        ),
        &["alertmanager", "result"],
    )
    .expect("a valid metric")
}

pub struct Pusher {
    http: reqwest::Client,
    pub config: AlertmanagerConfig,
    notifications: IntCounterVec,
}

impl Pusher {
    /// Reads the TLS files now (a reload reads them again): a bad one fails the load.
    pub fn new(config: AlertmanagerConfig, notifications: IntCounterVec) -> Result<Pusher, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(ca) = &config.tls_ca_file {
            let what = format!("alertmanager.tls_ca_file {}", ca.display());
            let pem = std::fs::read(ca).map_err(|e| format!("{what}: {e}"))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| format!("{what}: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{what}: no certificate in it"));
            }
            // Only this CA, as Prometheus's `tls_config.ca_file` does.
            builder = builder.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &config.tls_client {
            // The same rule as the endpoint's TLS key and the Google credentials file.
            refuse_world_readable(key, "alertmanager.tls_key_file", None)?;
            let mut pem =
                std::fs::read(cert).map_err(|e| format!("alertmanager.tls_cert_file {}: {e}", cert.display()))?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| format!("alertmanager.tls_key_file {}: {e}", key.display()))?);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                format!("alertmanager.tls_cert_file and tls_key_file ({} and {}): {e}", cert.display(), key.display())
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|e| format!("cannot build the Alertmanager client: {}", error_chain(&e)))?;
        // Every outcome from zero, so the first failure is an increase, not a new series.
        for url in &config.urls {
            for result in ["success", "failure"] {
                notifications.with_label_values(&[url, result]);
            }
        }
        Ok(Pusher { http, config, notifications })
    }

    pub fn push(self: &Arc<Self>, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        let body = Arc::new(alerts);
        for url in &self.config.urls {
            let (pusher, body, url) = (Arc::clone(self), Arc::clone(&body), url.clone());
            tokio::spawn(async move {
                let result = pusher.send(&url, &body).await;
                let label = if result.is_ok() { "success" } else { "failure" };
                pusher.notifications.with_label_values(&[&url, label]).inc();
                match result {
                    Ok(()) => tracing::debug!(alertmanager = %url, alerts = body.len(), "alerts pushed"),
                    Err(e) => tracing::warn!(alertmanager = %url, error = %e, "alert push failed"),
                }
            });
        }
    }

    async fn send(&self, base: &str, alerts: &[Alert]) -> Result<(), String> {
        let mut request = self.http.post(format!("{base}/api/v2/alerts")).json(alerts);
        if let Some(file) = &self.config.bearer_token_file {
            let token =
                std::fs::read_to_string(file).map_err(|e| format!("bearer_token_file {}: {e}", file.display()))?;
            request = request.bearer_auth(token.trim());
        } else if let Some((user, file)) = &self.config.basic_auth {
            // `else`: one Authorization header at most (the config refuses both as well).
            let password = std::fs::read_to_string(file)
                .map_err(|e| format!("basic_auth_password_file {}: {e}", file.display()))?;
            request = request.basic_auth(user, Some(password.trim()));
        }
        let response = request.send().await.map_err(|e| error_chain(&e.without_url()))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("HTTP {}", response.status())) }
    }
}
