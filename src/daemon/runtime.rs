//! Everything the daemon runs on, built from the configuration and validated as a whole before
//! any of it is used; rebuilt on reload (a running cycle keeps the runtime it started with).

use std::path::Path;
use std::sync::Arc;

use prometheus::IntCounterVec;

use crate::alertmanager::Pusher;
use crate::collect::Collector;
use crate::collect::client::ClientMetrics;
use crate::config::Config;
use crate::error::AppError;
use crate::server::web_config::WebConfig;

pub struct Runtime {
    pub config: Config,
    pub collector: Arc<Collector>,
    pub web: WebConfig,
    pub pusher: Option<Arc<Pusher>>,
}

/// The counters a runtime's parts count into (registered by the daemon, not by check-config).
#[derive(Clone)]
pub struct Counters {
    pub client: ClientMetrics,
    pub notifications: IntCounterVec,
}

impl Default for Counters {
    /// Unregistered counters, for commands that export no metrics.
    fn default() -> Self {
        Counters { client: ClientMetrics::new(), notifications: crate::alertmanager::notifications_counter() }
    }
}

impl Runtime {
    pub fn load(path: &Path, counters: &Counters) -> Result<Runtime, AppError> {
        let config = Config::load(path)?;
        let collector = Collector::from_config(&config, counters.client.clone()).map_err(AppError::Setup)?;
        let web = match &config.server.web_config {
            Some(p) => WebConfig::load(p).map_err(AppError::Setup)?,
            None => WebConfig::default(),
        };
        let pusher = config
            .alertmanager
            .clone()
            .map(|am| Pusher::new(am, counters.notifications.clone()).map(Arc::new))
            .transpose()
            .map_err(AppError::Setup)?;
        Ok(Runtime { config, collector: Arc::new(collector), web, pusher })
    }
}
