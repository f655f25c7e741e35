//! The configuration file as written: serde shapes with spans kept where an error must point
//! at a value. Defaults that need no checking live here; everything else is `resolve`'s job.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use super::{RateLimits, RunApi};
use crate::events::message::Feed;
use crate::inventory::Kind;
use crate::schedule::Schedule;
use crate::suppress::Suppression;

pub const DEFAULT_CRON: &str = "*/15 * * * *";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub scope: RawScope,
    pub schedule: RawSchedule,
    pub gcp: RawGcp,
    pub rules: RawRules,
    pub server: RawServer,
    pub source: RawSource,
    pub suppressions: Vec<Suppression>,
    pub alertmanager: Option<RawAlertmanager>,
    pub events: Option<RawEvents>,
    pub metrics: RawMetrics,
    pub validation: RawValidation,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawValidation {
    pub enabled: Option<Spanned<bool>>,
    pub recheck_interval: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvents {
    pub subscription: Spanned<String>,
    #[serde(default = "audit_log")]
    pub source: Feed,
}

fn audit_log() -> Feed {
    Feed::AuditLog
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawMetrics {
    pub per_workload: Spanned<bool>,
    pub resource_labels: Vec<Spanned<String>>,
}

impl Default for RawMetrics {
    fn default() -> Self {
        RawMetrics { per_workload: Spanned::new(0..0, true), resource_labels: Vec::new() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlertmanager {
    pub urls: Spanned<Vec<Spanned<String>>>,
    pub bearer_token_file: Option<Spanned<PathBuf>>,
    pub basic_auth_username: Option<Spanned<String>>,
    pub basic_auth_password_file: Option<Spanned<PathBuf>>,
    #[serde(default = "ten_seconds")]
    pub timeout: HumanDuration,
    #[serde(default = "one_minute")]
    pub resend_interval: Spanned<HumanDuration>,
    pub external_url: Option<Spanned<String>>,
    pub tls_ca_file: Option<Spanned<PathBuf>>,
    pub tls_cert_file: Option<Spanned<PathBuf>>,
    pub tls_key_file: Option<Spanned<PathBuf>>,
    #[serde(default)]
    pub extra_labels: BTreeMap<String, Spanned<String>>,
}

fn one_minute() -> Spanned<HumanDuration> {
    Spanned::new(0..0, HumanDuration(Duration::from_secs(60)))
}

fn ten_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawScope {
    pub projects: Vec<Spanned<String>>,
    pub project_query: Option<Spanned<String>>,
    pub folders: Vec<Spanned<String>>,
    pub exclude_projects: Vec<Spanned<String>>,
    pub regions: Vec<Spanned<String>>,
    pub kinds: Option<Spanned<Vec<Kind>>>,
    pub project_query_ttl: Option<Spanned<HumanDuration>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSchedule {
    #[serde(deserialize_with = "schedule")]
    pub cron: Schedule,
    pub run_on_start: bool,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule { cron: Schedule::parse(DEFAULT_CRON).expect("the default schedule parses"), run_on_start: true }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawGcp {
    pub credentials_file: Option<PathBuf>,
    pub allow_world_readable_credentials: bool,
    pub impersonate_service_account: Option<Spanned<String>>,
    pub delegates: Vec<Spanned<String>>,
    pub quota_project: Option<Spanned<String>>,
    pub concurrency: Option<Spanned<usize>>,
    pub request_timeout: HumanDuration,
    pub token_timeout: HumanDuration,
    pub max_retries: usize,
    pub retry_min_delay: HumanDuration,
    pub retry_max_delay: HumanDuration,
    pub endpoints: RawEndpoints,
    pub run_api: RunApi,
    pub rate_limits: RateLimits,
}

impl Default for RawGcp {
    fn default() -> Self {
        RawGcp {
            credentials_file: None,
            allow_world_readable_credentials: false,
            impersonate_service_account: None,
            delegates: Vec::new(),
            quota_project: None,
            concurrency: None,
            request_timeout: HumanDuration(Duration::from_secs(30)),
            token_timeout: HumanDuration(Duration::from_secs(30)),
            max_retries: 5,
            retry_min_delay: HumanDuration(Duration::from_millis(500)),
            retry_max_delay: HumanDuration(Duration::from_secs(30)),
            endpoints: RawEndpoints::default(),
            run_api: RunApi::V1,
            rate_limits: RateLimits::default(),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawEndpoints {
    pub run: Option<Spanned<String>>,
    pub functions: Option<Spanned<String>>,
    pub binaryauthorization: Option<Spanned<String>>,
    pub resourcemanager: Option<Spanned<String>>,
    pub asset: Option<Spanned<String>>,
    pub oauth2: Option<Spanned<String>>,
    pub iamcredentials: Option<Spanned<String>>,
    pub pubsub: Option<Spanned<String>>,
    pub containeranalysis: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawRules {
    pub accepted_policies: Vec<String>,
    pub allow_breakglass: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub listen: SocketAddr,
    pub web_config: Option<PathBuf>,
    pub max_connections: Option<Spanned<usize>>,
    pub header_read_timeout: Option<HumanDuration>,
    pub idle_timeout: Option<HumanDuration>,
    pub write_timeout: Option<HumanDuration>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: SocketAddr::from(([127, 0, 0, 1], 10293)),
            web_config: None,
            max_connections: None,
            header_read_timeout: None,
            idle_timeout: None,
            write_timeout: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSource {
    pub kind: Spanned<String>,
    pub path: Option<PathBuf>,
    pub scope: Option<Spanned<String>>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource { kind: Spanned::new(0..0, "gcp".into()), path: None, scope: None }
    }
}

/// `"30s"`, `"2m"`, `"1h 30m"`: humantime's format.
#[derive(Debug, Clone, Copy)]
pub(super) struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let duration = humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {s:?} ({e}); use e.g. \"30s\" or \"2m\""))
        })?;
        if duration.is_zero() {
            return Err(serde::de::Error::custom(format!("duration {s:?} must be greater than zero")));
        }
        Ok(HumanDuration(duration))
    }
}

fn schedule<'de, D: Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
    let s = String::deserialize(d)?;
    Schedule::parse(&s).map_err(serde::de::Error::custom)
}
