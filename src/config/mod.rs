//! The TOML configuration: parsed strictly (unknown keys are errors) and validated before
//! anything binds or calls out. Every error is one line naming file:line:column and the key.

mod raw;
mod resolve;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::evaluate::Rules;
use crate::events::message::Feed;
use crate::inventory::Kind;
use crate::schedule::Schedule;
use crate::suppress::Suppressions;
use raw::RawConfig;
use resolve::Ctx;

pub use raw::DEFAULT_CRON;

#[derive(Debug, Clone)]
pub struct Config {
    pub scope: Scope,
    pub schedule: Schedule,
    pub run_on_start: bool,
    pub gcp: Gcp,
    pub rules: Rules,
    pub server: Server,
    pub source: Source,
    pub suppressions: Suppressions,
    pub alertmanager: Option<Alertmanager>,
    /// Near-real-time re-audits from Pub/Sub; `None`: the schedule alone.
    pub events: Option<Events>,
    pub metrics: MetricsConfig,
    /// Continuous validation of what serves; `None`: off (the default).
    pub validation: Option<Validation>,
}

/// `[validation]`: every serving image checked against the policy today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// How long an image that passed is not looked up again (its attestor is, every cycle).
    pub recheck_interval: Duration,
}

/// `[events]`: which Pub/Sub subscription announces changes, and in which form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Events {
    /// `projects/P/subscriptions/S`.
    pub subscription: String,
    pub feed: Feed,
}

/// `[metrics]`: which audit series `/metrics` exports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// One series per workload (`binauthz_resource_*`); `false` leaves the per-project counts
    /// (`binauthz_project_resources`, `binauthz_project_violations`) and the project series.
    pub per_workload: bool,
    /// Cloud Run label keys exported on `binauthz_resource_labels`, each with its Prometheus
    /// label name (`team` -> `label_team`).
    pub resource_labels: Vec<ResourceLabel>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig { per_workload: true, resource_labels: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceLabel {
    /// The Cloud Run label key, as on the resource.
    pub key: String,
    /// `label_` + the key with every character Prometheus does not allow replaced by `_`.
    pub name: String,
}

/// Direct push of alerts to Alertmanager (`POST /api/v2/alerts`).
#[derive(Debug, Clone)]
pub struct Alertmanager {
    /// Every instance, not a load balancer: Alertmanager deduplicates, not distributes.
    pub urls: Vec<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<(String, PathBuf)>,
    pub timeout: Duration,
    /// Active alerts are sent again this often between cycles (Alertmanager forgets them
    /// when it restarts, and expects clients to resend every 30 s to 3 min).
    pub resend_interval: Duration,
    /// Where people reach this auditor (`https://auditor.example.com`, no trailing slash):
    /// `generatorURL` is `{external_url}/report`. Unset: `http(s)://HOSTNAME:PORT`.
    pub external_url: Option<String>,
    /// The CA that signs the Alertmanagers' certificates (only it is trusted); unset: the
    /// system's roots.
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and key for Alertmanagers that require one.
    pub tls_client: Option<(PathBuf, PathBuf)>,
    /// Added to every pushed alert, as Prometheus adds its `external_labels`.
    pub extra_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Scope {
    pub projects: Vec<String>,
    /// A Resource Manager search; its fields are ORed, and `parent:` matches direct children.
    pub project_query: Option<String>,
    /// `folders/N` or `organizations/N`: every ACTIVE project in the subtree.
    pub folders: Vec<String>,
    /// Project ID globs never read.
    pub exclude_projects: Vec<String>,
    /// Only workloads in these regions, whatever the source. Empty: every region (Run v2
    /// asks Cloud Run which locations each project has).
    pub regions: Vec<String>,
    pub kinds: Vec<Kind>,
    /// How long `project_query` results are reused before searching again.
    pub project_query_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Gcp {
    /// Any file Application Default Credentials accept; unset: ADC's own search.
    pub credentials_file: Option<PathBuf>,
    /// Accept a credentials file that holds a secret and that other users can read (refused by default).
    pub allow_world_readable_credentials: bool,
    /// The service account every API call is made as, impersonated with the credentials above.
    pub impersonate_service_account: Option<String>,
    /// The delegation chain to it, as full names (`projects/-/serviceAccounts/EMAIL`).
    pub delegates: Vec<String>,
    /// Sent as `x-goog-user-project`; unset: GOOGLE_CLOUD_QUOTA_PROJECT, then the file's.
    pub quota_project: Option<String>,
    pub concurrency: usize,
    pub request_timeout: Duration,
    pub token_timeout: Duration,
    pub max_retries: usize,
    pub retry_min_delay: Duration,
    pub retry_max_delay: Duration,
    pub endpoints: Endpoints,
    /// Which Cloud Run Admin API lists services, jobs and worker pools.
    pub run_api: RunApi,
    pub rate_limits: RateLimits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunApi {
    /// The v1 global endpoint: one paginated list per kind and project, all regions at once.
    V1,
    /// v2: one list per kind, region and project.
    V2,
}

/// Requests per minute per API (one token bucket each, shared by all projects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    pub run: u32,
    pub functions: u32,
    pub binaryauthorization: u32,
    pub resourcemanager: u32,
    pub asset: u32,
    pub containeranalysis: u32,
}

impl Default for RateLimits {
    /// See docs/performance.md for the quotas behind these numbers.
    fn default() -> Self {
        RateLimits {
            run: 1200,
            functions: 3000,
            binaryauthorization: 1200,
            resourcemanager: 600,
            asset: 100,
            containeranalysis: 1200,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub run: String,
    pub functions: String,
    pub binaryauthorization: String,
    pub resourcemanager: String,
    pub asset: String,
    /// A person's refresh token is exchanged at `{oauth2}/token`.
    pub oauth2: String,
    /// Impersonation: `{iamcredentials}/v1/projects/-/serviceAccounts/SA:generateAccessToken`.
    pub iamcredentials: String,
    /// Event mode pulls `{pubsub}/v1/{subscription}:pull`.
    pub pubsub: String,
    /// Continuous validation lists attestations (occurrences of attestors' notes) here.
    pub containeranalysis: String,
}

impl Endpoints {
    /// Google's production endpoints: what every unset `[gcp.endpoints]` key means.
    pub fn google() -> Endpoints {
        let at = |host: &str| format!("https://{host}.googleapis.com");
        Endpoints {
            run: at("run"),
            functions: at("cloudfunctions"),
            binaryauthorization: at("binaryauthorization"),
            resourcemanager: at("cloudresourcemanager"),
            asset: at("cloudasset"),
            oauth2: at("oauth2"),
            iamcredentials: at("iamcredentials"),
            pubsub: at("pubsub"),
            containeranalysis: at("containeranalysis"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// exporter-toolkit web config: TLS and basic auth.
    pub web_config: Option<PathBuf>,
    pub limits: ServerLimits,
}

/// What the command line and the environment say about `[server]`, over the file's values;
/// applied at every (re)load, so a reload never moves the listener back to the file's address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerOverrides {
    /// `--web.listen-address`, else `$PORT` (every IPv4 address on that port).
    pub listen: Option<SocketAddr>,
    /// `--web.config.file`.
    pub web_config: Option<PathBuf>,
}

/// What one client may hold of the endpoint (see docs/security.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Connections served at once; at the cap, idle ones are closed to make room.
    pub max_connections: usize,
    /// From accept (TLS handshake included), or from a request's first byte, to its last header.
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// How long a response may take to be delivered, once its request was read.
    pub write_timeout: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_connections: 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            write_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Gcp,
    /// A directory of saved API responses, one sub-directory per project, or a
    /// `gcloud asset list --format=json` file.
    Snapshot {
        path: PathBuf,
    },
    /// One Cloud Asset Inventory feed for an organization, folder or project.
    AssetInventory {
        scope: String,
    },
}

/// A configuration error, already formatted as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
        Config::parse(&text, path)
    }

    /// [`Config::load`], then the command line's `[server]` settings over the file's.
    pub fn load_overridden(path: &Path, overrides: &ServerOverrides) -> Result<Config, ConfigError> {
        let mut config = Config::load(path)?;
        if let Some(listen) = overrides.listen {
            config.server.listen = listen;
        }
        if let Some(web_config) = &overrides.web_config {
            config.server.web_config = Some(web_config.clone());
        }
        Ok(config)
    }

    /// Parses `text` as if read from `path` (relative paths inside resolve against its folder):
    /// each section resolves itself (defaults, checks, file:line:column errors), the source
    /// first, since what `[scope]` may say depends on it.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let ctx = Ctx::new(path, text);
        let raw: RawConfig = toml::from_str(text).map_err(|e| ctx.toml_error(&e))?;
        let source = raw.source.resolve(&ctx)?;
        Ok(Config {
            scope: raw.scope.resolve(&ctx, &source)?,
            schedule: raw.schedule.cron,
            run_on_start: raw.schedule.run_on_start,
            gcp: raw.gcp.resolve(&ctx)?,
            rules: Rules {
                accepted_policies: raw.rules.accepted_policies,
                allow_breakglass: raw.rules.allow_breakglass,
            },
            server: raw.server.resolve(&ctx)?,
            suppressions: Suppressions(raw.suppressions),
            alertmanager: raw.alertmanager.map(|am| am.resolve(&ctx)).transpose()?,
            events: raw.events.map(|e| e.resolve(&ctx, &source)).transpose()?,
            metrics: raw.metrics.resolve(&ctx)?,
            validation: raw.validation.resolve(&ctx, &source)?,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("/etc/b/config.toml")).map_err(|e| e.0)
    }

    #[test]
    fn a_minimal_config_gets_the_documented_defaults() {
        let c = parse("[scope]\nprojects = [\"p1\", \"p1\", \"p0\"]\n").unwrap();
        assert_eq!(c.scope.projects, vec!["p0", "p1"]);
        assert_eq!(c.scope.kinds, Kind::ALL.to_vec());
        assert_eq!(c.gcp.concurrency, 16);
        assert_eq!(c.gcp.request_timeout, Duration::from_secs(30));
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:10293");
        assert_eq!(c.gcp.endpoints.run, "https://run.googleapis.com");
        assert!(c.run_on_start);
        assert_eq!(c.schedule.to_string(), DEFAULT_CRON);
    }

    #[test]
    fn an_unknown_key_is_reported_with_file_line_and_column() {
        let err = parse("[scope]\nprojects = [\"p\"]\n\n[gcp]\nconcurency = 3\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:5:1: "), "{err}");
        assert!(err.contains("concurency"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn bad_values_name_their_position_and_problem() {
        let cases = [
            ("[scope]\nprojects=[\"p\"]\n[gcp]\nrequest_timeout = \"soon\"\n", "4:19", "invalid duration"),
            ("[scope]\nprojects=[\"p\"]\n[schedule]\ncron = \"* * *\"\n", "4:8", "3 fields"),
            ("[scope]\nprojects=[\"p\"]\n[server]\nlisten = \"localhost\"\n", "4:10", "socket address"),
            ("[scope]\nprojects=[\"p/../x\"]\n", "2:11", "not a valid identifier"),
            ("[scope]\nprojects=[\"p\"]\nkinds=[\"lambda\"]\n", "3:8", "lambda"),
            ("[scope]\nprojects=[\"p\"]\n[gcp]\nconcurrency = 0\n", "4:15", "between 1 and 1024"),
            ("[scope]\nprojects=[\"p\"]\n[gcp.endpoints]\nrun = \"ftp://x\"\n", "4:7", "not an http(s) URL"),
            ("[source]\nkind = \"snapshot\"\n", "2:8", "needs source.path"),
            ("[scope]\nprojects=[\"p\"]\n[source]\nkind = \"s3\"\n", "4:8", "unknown source"),
        ];
        for (text, pos, needle) in cases {
            let err = parse(text).unwrap_err();
            assert!(err.starts_with(&format!("/etc/b/config.toml:{pos}: ")), "{text:?} gave {err}");
            assert!(err.contains(needle), "{text:?} gave {err}");
        }
    }

    #[test]
    fn suppressions_need_a_reason_and_a_valid_expiry() {
        let base = "[scope]\nprojects=[\"p\"]\n[[suppressions]]\nname = \"x\"\n";
        let ok = parse(&format!("{base}reason = \"INC-1\"\nexpires = \"2030-01-31\"\n")).unwrap();
        assert_eq!(ok.suppressions.0.len(), 1);
        assert_eq!(ok.suppressions.0[0].project, "*");
        let missing = parse(&format!("{base}reason = \"INC-1\"\n")).unwrap_err();
        assert!(missing.contains("missing field `expires`"), "{missing}");
        let invalid = parse(&format!("{base}reason = \"INC-1\"\nexpires = \"soon\"\n")).unwrap_err();
        assert!(invalid.starts_with("/etc/b/config.toml:6:11: ") && invalid.contains("invalid expires"), "{invalid}");
        let no_reason = parse(&format!("{base}expires = \"2030-01-31\"\n")).unwrap_err();
        assert!(no_reason.contains("missing field `reason`"), "{no_reason}");
        let bad_violation =
            parse(&format!("{base}violation = \"evil\"\nreason = \"x\"\nexpires = \"2030-01-31\"\n")).unwrap_err();
        assert!(bad_violation.contains("unknown variant `evil`"), "{bad_violation}");
        let bad_kind =
            parse(&format!("{base}kind = \"services\"\nreason = \"x\"\nexpires = \"2030-01-31\"\n")).unwrap_err();
        assert!(
            bad_kind.starts_with("/etc/b/config.toml:5:8: ") && bad_kind.contains("unknown kind \"services\""),
            "{bad_kind}"
        );
    }

    #[test]
    fn alertmanager_urls_are_checked() {
        let c = parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://am:9093/\"]\n").unwrap();
        assert_eq!(c.alertmanager.unwrap().urls, vec!["http://am:9093"]);
        let err = parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"am:9093\"]\n").unwrap_err();
        assert!(err.contains("alertmanager.urls"), "{err}");
        let err =
            parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://am\"]\nbasic_auth_username = \"u\"\n")
                .unwrap_err();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn alertmanager_resend_tls_external_url_and_extra_labels_are_checked() {
        let base = "[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"https://am:9093\"]\n";
        let am = parse(base).unwrap().alertmanager.unwrap();
        assert_eq!(am.resend_interval, Duration::from_secs(60));
        assert!(am.external_url.is_none() && am.tls_ca_file.is_none() && am.tls_client.is_none());
        let am = parse(&format!(
            "{base}resend_interval = \"30s\"\nexternal_url = \"https://auditor.example.com/\"\ntls_ca_file = \"ca.pem\"\ntls_cert_file = \"c.pem\"\ntls_key_file = \"k.pem\"\n[alertmanager.extra_labels]\ncluster = \"eu-1\"\nreplica_set = \"a\"\n"
        ))
        .unwrap()
        .alertmanager
        .unwrap();
        assert_eq!(am.resend_interval, Duration::from_secs(30));
        assert_eq!(am.external_url.as_deref(), Some("https://auditor.example.com"));
        assert_eq!(am.tls_ca_file, Some(PathBuf::from("/etc/b/ca.pem")));
        assert_eq!(am.tls_client, Some((PathBuf::from("/etc/b/c.pem"), PathBuf::from("/etc/b/k.pem"))));
        assert_eq!(am.extra_labels["cluster"], "eu-1");
        let cases = [
            ("tls_cert_file = \"c.pem\"\n", "5:17", "tls_cert_file and tls_key_file go together"),
            ("resend_interval = \"2h\"\n", "5:19", "at most 1h"),
            ("resend_interval = \"0s\"\n", "5:19", "greater than zero"),
            ("external_url = \"auditor:10293\"\n", "5:16", "alertmanager.external_url"),
            ("external_url = \"https://u:pw@auditor\"\n", "5:16", "carries credentials"),
            ("[alertmanager.extra_labels]\n\"1x\" = \"v\"\n", "6:8", "not a Prometheus label name"),
            ("[alertmanager.extra_labels]\n__name = \"v\"\n", "6:10", "not a Prometheus label name"),
            ("[alertmanager.extra_labels]\nproject = \"v\"\n", "6:11", "would collide with a label the alerts set"),
            ("[alertmanager.extra_labels]\nlabel_team = \"v\"\n", "6:14", "would collide"),
            ("[alertmanager.extra_labels]\ncluster = \"\"\n", "6:11", "is empty"),
        ];
        for (extra, pos, needle) in cases {
            let err = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(err.starts_with(&format!("/etc/b/config.toml:{pos}: ")), "{extra:?} gave {err}");
            assert!(err.contains(needle), "{extra:?} gave {err}");
        }
    }

    #[test]
    fn alertmanager_credentials_never_ride_in_the_url() {
        let err =
            parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://am:s3cret@am:9093\"]\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:4:9: alertmanager.urls: "), "{err}");
        assert!(err.contains("basic_auth_username and basic_auth_password_file"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
        let err =
            parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://u:s3cret@am:bad\"]\n").unwrap_err();
        assert!(!err.contains("s3cret") && err.contains("***@am:bad"), "{err}");
        let both = "[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://am\"]\nbearer_token_file = \"t\"\nbasic_auth_username = \"u\"\nbasic_auth_password_file = \"p\"\n";
        let err = parse(both).unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:5:21: ") && err.contains("exclude each other"), "{err}");
    }

    #[test]
    fn metrics_resource_labels_get_prometheus_names() {
        let c = parse("[scope]\nprojects=[\"p\"]\n").unwrap();
        assert_eq!(c.metrics, MetricsConfig::default());
        assert!(c.metrics.per_workload);
        let c = parse("[scope]\nprojects=[\"p\"]\n[metrics]\nresource_labels = [\"team\", \"cost-center\", \"team\", \"équipe\"]\n")
            .unwrap();
        let names: Vec<(&str, &str)> =
            c.metrics.resource_labels.iter().map(|l| (l.key.as_str(), l.name.as_str())).collect();
        assert_eq!(names, [("équipe", "label__quipe"), ("cost-center", "label_cost_center"), ("team", "label_team")]);
    }

    #[test]
    fn metrics_labels_that_cannot_be_exported_are_refused() {
        let base = "[scope]\nprojects=[\"p\"]\n[metrics]\n";
        let err = parse(&format!("{base}resource_labels = [\"cost-center\", \"cost_center\"]\n")).unwrap_err();
        assert!(
            err.starts_with("/etc/b/config.toml:4:35: ") && err.contains("both be exported as label_cost_center"),
            "{err}"
        );
        let err = parse(&format!("{base}resource_labels = [\"\"]\n")).unwrap_err();
        assert!(err.contains("not a Cloud Run label key"), "{err}");
        let err = parse(&format!("{base}per_workload = false\nresource_labels = [\"team\"]\n")).unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:5:20: ") && err.contains("per_workload = false"), "{err}");
        let c = parse(&format!("{base}per_workload = false\n")).unwrap();
        assert!(!c.metrics.per_workload);
        assert!(parse(&format!("{base}per_workloads = false\n")).unwrap_err().contains("per_workloads"));
    }

    #[test]
    fn server_limits_have_defaults_and_bounds() {
        let c = parse("[scope]\nprojects=[\"p\"]\n").unwrap();
        assert_eq!(c.server.limits, ServerLimits::default());
        let c = parse("[scope]\nprojects=[\"p\"]\n[server]\nmax_connections = 10\nidle_timeout = \"5s\"\n").unwrap();
        assert_eq!(c.server.limits.max_connections, 10);
        assert_eq!(c.server.limits.idle_timeout, Duration::from_secs(5));
        let err = parse("[scope]\nprojects=[\"p\"]\n[server]\nmax_connections = 0\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:4:19: server.max_connections"), "{err}");
        let err = parse("[scope]\nprojects=[\"p\"]\n[server]\nheader_read_timeout = \"0s\"\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:4:23: ") && err.contains("greater than zero"), "{err}");
    }

    #[test]
    fn a_gcp_source_without_projects_is_refused() {
        assert!(parse("").unwrap_err().contains("needs projects"));
    }

    #[test]
    fn impersonation_delegates_and_quota_project_are_checked() {
        let base = "[scope]\nprojects=[\"p\"]\n[gcp]\n";
        let c = parse(&format!(
            "{base}impersonate_service_account = \"projects/-/serviceAccounts/a@h.iam.gserviceaccount.com\"\ndelegates = [\"hop@p.iam.gserviceaccount.com\"]\nquota_project = \"bill-1\"\n"
        ))
        .unwrap();
        assert_eq!(c.gcp.impersonate_service_account.as_deref(), Some("a@h.iam.gserviceaccount.com"));
        assert_eq!(c.gcp.delegates, vec!["projects/-/serviceAccounts/hop@p.iam.gserviceaccount.com"]);
        assert_eq!(c.gcp.quota_project.as_deref(), Some("bill-1"));
        assert_eq!(c.gcp.endpoints.oauth2, "https://oauth2.googleapis.com");
        assert_eq!(c.gcp.endpoints.iamcredentials, "https://iamcredentials.googleapis.com");
        let cases = [
            ("impersonate_service_account = \"projects/p/serviceAccounts/a@b.c\"\n", "4:31", "must be \"-\""),
            ("impersonate_service_account = \"a/../b@c.d\"\n", "4:31", "not a service account email"),
            ("delegates = [\"hop@p.iam.gserviceaccount.com\"]\n", "4:14", "needs gcp.impersonate_service_account"),
            ("quota_project = \"Bill Me\"\n", "4:17", "gcp.quota_project"),
        ];
        for (extra, pos, needle) in cases {
            let err = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(
                err.starts_with(&format!("/etc/b/config.toml:{pos}: ")) && err.contains(needle),
                "{extra} gave {err}"
            );
        }
    }

    #[test]
    fn relative_paths_resolve_against_the_config_folder() {
        let c =
            parse("[source]\nkind = \"snapshot\"\npath = \"demo\"\n[gcp]\ncredentials_file = \"key.json\"\n").unwrap();
        assert_eq!(c.source, Source::Snapshot { path: PathBuf::from("/etc/b/demo") });
        assert_eq!(c.gcp.credentials_file, Some(PathBuf::from("/etc/b/key.json")));
    }

    #[test]
    fn discovery_keys_are_refused_where_no_discovery_happens() {
        let snapshot = "[source]\nkind = \"snapshot\"\npath = \"demo\"\n[scope]\n";
        let asset = "[source]\nkind = \"asset_inventory\"\nscope = \"organizations/1\"\n[scope]\n";
        let cases = [
            (snapshot, "project_query = \"parent:folders/1\"\n", "5:17", "scope.project_query"),
            (snapshot, "folders = [\"folders/1\"]\n", "5:12", "scope.folders"),
            (asset, "project_query_ttl = \"1h\"\n", "5:21", "scope.project_query_ttl"),
        ];
        for (source, extra, pos, key) in cases {
            let err = parse(&format!("{source}{extra}")).unwrap_err();
            assert!(err.starts_with(&format!("/etc/b/config.toml:{pos}: {key} ")), "{extra} gave {err}");
            assert!(err.contains("remove it, or use scope.projects"), "{err}");
        }
        // What narrows any source is accepted everywhere.
        let c = parse(&format!(
            "{asset}projects = [\"p\"]\nregions = [\"us-central1\"]\nexclude_projects = [\"x-*\"]\nkinds = [\"service\"]\n"
        ))
        .unwrap();
        assert_eq!(
            (c.scope.projects, c.scope.regions, c.scope.kinds),
            (vec!["p".into()], vec!["us-central1".into()], vec![Kind::Service])
        );
    }

    #[test]
    fn an_empty_list_that_would_audit_nothing_points_at_itself() {
        let err = parse("[scope]\nprojects=[\"p\"]\nkinds = []\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:3:9: scope.kinds is empty"), "{err}");
        let err = parse("[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = []\n").unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:4:8: alertmanager.urls is empty"), "{err}");
        let err = parse(
            "[scope]\nprojects=[\"p\"]\n[alertmanager]\nurls = [\"http://am\"]\nbasic_auth_password_file = \"pw\"\n",
        )
        .unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:5:28: ") && err.contains("go together"), "{err}");
    }

    #[test]
    fn unset_endpoints_are_googles() {
        assert_eq!(parse("[scope]\nprojects=[\"p\"]\n").unwrap().gcp.endpoints, Endpoints::google());
        let c = parse("[scope]\nprojects=[\"p\"]\n[gcp.endpoints]\nrun = \"http://127.0.0.1:1/\"\n").unwrap();
        assert_eq!(c.gcp.endpoints, Endpoints { run: "http://127.0.0.1:1".into(), ..Endpoints::google() });
    }

    #[test]
    fn validation_is_off_unless_enabled_and_needs_a_google_source() {
        let base = "[scope]\nprojects=[\"p\"]\n";
        assert_eq!(parse(base).unwrap().validation, None);
        let c = parse(&format!("{base}[validation]\nenabled = true\n")).unwrap();
        assert_eq!(c.validation, Some(Validation { recheck_interval: Duration::from_secs(3600) }));
        assert_eq!(c.gcp.endpoints.containeranalysis, "https://containeranalysis.googleapis.com");
        let c = parse(&format!("{base}[validation]\nenabled = true\nrecheck_interval = \"10m\"\n")).unwrap();
        assert_eq!(c.validation.unwrap().recheck_interval, Duration::from_secs(600));
        assert_eq!(
            parse(&format!("{base}[validation]\nenabled = false\nrecheck_interval = \"10m\"\n")).unwrap().validation,
            None
        );
        let cases = [
            (format!("{base}[validation]\nenabled = \"yes\"\n"), "4:11", "invalid type"),
            (format!("{base}[validation]\nenabled = true\nrecheck = \"1h\"\n"), "5:1", "unknown field `recheck`"),
            (format!("{base}[validation]\nenabled = true\nrecheck_interval = \"0s\"\n"), "5:20", "greater than zero"),
            (
                "[source]\nkind = \"snapshot\"\npath = \"demo\"\n[validation]\nenabled = true\n".to_string(),
                "5:11",
                "validation.enabled: continuous validation reads",
            ),
        ];
        for (text, pos, needle) in cases {
            let err = parse(&text).unwrap_err();
            assert!(
                err.starts_with(&format!("/etc/b/config.toml:{pos}: ")) && err.contains(needle),
                "{text} gave {err}"
            );
        }
    }

    #[test]
    fn events_name_a_subscription_and_need_a_google_source() {
        let base = "[scope]\nprojects=[\"p\"]\n[events]\n";
        let c = parse(&format!("{base}subscription = \"projects/host-1/subscriptions/binauthz-auditor\"\n")).unwrap();
        assert_eq!(
            c.events,
            Some(Events {
                subscription: "projects/host-1/subscriptions/binauthz-auditor".into(),
                feed: Feed::AuditLog
            })
        );
        assert_eq!(c.gcp.endpoints.pubsub, "https://pubsub.googleapis.com");
        let feed = parse(&format!("{base}subscription = \"projects/h/subscriptions/sub\"\nsource = \"asset_feed\"\n"))
            .unwrap();
        assert_eq!(feed.events.unwrap().feed, Feed::AssetFeed);
        let cases = [
            ("subscription = \"binauthz-auditor\"\n", "4:16", "is not projects/PROJECT/subscriptions/NAME"),
            ("subscription = \"projects/h/subscriptions/x\"\n", "4:16", "is not projects/PROJECT/subscriptions/NAME"),
            (
                "subscription = \"projects/h/subscriptions/s-1\"\nsource = \"syslog\"\n",
                "5:10",
                "unknown variant `syslog`",
            ),
            ("source = \"audit_log\"\n", "3:1", "missing field `subscription`"),
        ];
        for (extra, pos, needle) in cases {
            let err = parse(&format!("{base}{extra}")).unwrap_err();
            assert!(
                err.starts_with(&format!("/etc/b/config.toml:{pos}: ")) && err.contains(needle),
                "{extra} gave {err}"
            );
        }
        let snapshot = "[source]\nkind = \"snapshot\"\npath = \"demo\"\n[events]\nsubscription = \"projects/h/subscriptions/sub\"\n";
        let err = parse(snapshot).unwrap_err();
        assert!(err.starts_with("/etc/b/config.toml:5:16: events.subscription: event mode re-reads"), "{err}");
    }
}
