//! Everything the daemon runs on, built from the configuration and validated as a whole before
//! any of it is used; rebuilt on reload (a running cycle keeps the runtime it started with).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prometheus::IntCounterVec;

use crate::alertmanager::Pusher;
use crate::collect::Collector;
use crate::collect::client::ClientMetrics;
use crate::collect::reread::Reader;
use crate::collect::validation::Validator;
use crate::config::{Config, ServerOverrides};
use crate::error::AppError;
use crate::events::message::Feed;
use crate::events::pubsub::Subscription;
use crate::server::web_config::WebConfig;

/// A pull waits up to this long: past the server's own long-poll wait (89 s on the
/// emulator), so that an empty poll ends on the server's side.
const PULL_TIMEOUT: Duration = Duration::from_secs(100);

pub struct Runtime {
    pub config: Config,
    pub collector: Arc<Collector>,
    pub web: WebConfig,
    pub pusher: Option<Arc<Pusher>>,
    pub events: Option<EventSource>,
}

/// `[events]`, ready: the subscription to pull and how to read again what it announces, on
/// the collector's own client.
pub struct EventSource {
    pub subscription: Arc<Subscription>,
    pub reader: Arc<Reader>,
    pub feed: Feed,
    /// `[validation]`: what a re-read workload serves is validated too.
    pub validator: Option<Arc<Validator>>,
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
    pub fn load(path: &Path, overrides: &ServerOverrides, counters: &Counters) -> Result<Runtime, AppError> {
        let config = Config::load_overridden(path, overrides)?;
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
        let events = match (&config.events, collector.api_client()) {
            (None, _) => None,
            (Some(events), Some(client)) => Some(EventSource {
                subscription: Arc::new(Subscription::new(
                    Arc::clone(client),
                    &config.gcp.endpoints.pubsub,
                    &events.subscription,
                    PULL_TIMEOUT,
                )),
                reader: Arc::new(Reader::new(Arc::clone(client), config.gcp.endpoints.clone())),
                feed: events.feed,
                validator: collector.validator().cloned(),
            }),
            // The configuration refuses this pairing; said again here rather than assumed.
            (Some(_), None) => {
                return Err(AppError::Setup("[events] needs a Google source (gcp or asset_inventory)".into()));
            }
        };
        Ok(Runtime { config, collector: Arc::new(collector), web, pusher, events })
    }
}
