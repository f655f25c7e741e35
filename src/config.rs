//! The TOML configuration: parsed strictly (unknown keys are errors) and validated before
//! anything binds or calls out. Every error is one line naming file:line:column and the key.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::evaluate::Rules;
use crate::inventory::Kind;
use crate::schedule::Schedule;
use crate::suppress::{Suppression, Suppressions};

#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub scope: Scope,
    pub schedule: Schedule,
    pub run_on_start: bool,
    pub gcp: Gcp,
    pub rules: Rules,
    pub server: Server,
    pub source: Source,
    pub suppressions: Suppressions,
    pub alertmanager: Option<Alertmanager>,
}

/// Direct push of violations to Alertmanager (`POST /api/v2/alerts`).
#[derive(Debug, Clone)]
pub struct Alertmanager {
    /// Every instance, not a load balancer: Alertmanager deduplicates, not distributes.
    pub urls: Vec<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub basic_auth: Option<(String, PathBuf)>,
    pub timeout: Duration,
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
    /// Empty: ask Cloud Run which locations each project has.
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
}

impl Default for RateLimits {
    /// See docs/performance.md for the quotas behind these numbers.
    fn default() -> Self {
        RateLimits { run: 1200, functions: 3000, binaryauthorization: 1200, resourcemanager: 600, asset: 100 }
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
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// exporter-toolkit web config: TLS and basic auth.
    pub web_config: Option<PathBuf>,
    pub limits: ServerLimits,
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

    /// Parses `text` as if read from `path` (relative paths inside resolve against its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().replace('\n', " ");
            ConfigError(match e.span() {
                Some(span) => format!("{}: {message}", position(path, text, span)),
                None => format!("{}: {message}", path.display()),
            })
        })?;
        let at = |span: Range<usize>, msg: String| ConfigError(format!("{}: {msg}", position(path, text, span)));
        let base = path.parent().unwrap_or(Path::new("."));

        let source = match (raw.source.kind.get_ref().as_str(), raw.source.path) {
            ("gcp", _) => Source::Gcp,
            ("asset_inventory", _) => {
                let scope = raw.source.scope.as_ref().ok_or_else(|| {
                    at(raw.source.kind.span(), "source.kind = \"asset_inventory\" needs source.scope".into())
                })?;
                let parts: Vec<&str> = scope.get_ref().split('/').collect();
                let valid = matches!(parts.as_slice(), ["organizations" | "folders" | "projects", id] if validate_identifier(id).is_ok());
                if !valid {
                    return Err(at(
                        scope.span(),
                        format!("source.scope: {:?} is not organizations/N, folders/N or projects/P", scope.get_ref()),
                    ));
                }
                Source::AssetInventory { scope: scope.get_ref().clone() }
            }
            ("snapshot", Some(p)) => Source::Snapshot { path: base.join(p) },
            ("snapshot", None) => {
                return Err(at(raw.source.kind.span(), "source.kind = \"snapshot\" needs source.path".into()));
            }
            (other, _) => {
                return Err(at(
                    raw.source.kind.span(),
                    format!(
                        "source.kind: unknown source {other:?}, expected \"gcp\", \"snapshot\" or \"asset_inventory\""
                    ),
                ));
            }
        };

        for p in &raw.scope.projects {
            validate_identifier(p.get_ref()).map_err(|m| at(p.span(), format!("scope.projects: {m}")))?;
        }
        for r in &raw.scope.regions {
            validate_identifier(r.get_ref()).map_err(|m| at(r.span(), format!("scope.regions: {m}")))?;
        }
        for f in &raw.scope.folders {
            let valid = matches!(f.get_ref().split_once('/'), Some(("folders" | "organizations", n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                return Err(at(
                    f.span(),
                    format!("scope.folders: {:?} is not folders/N or organizations/N", f.get_ref()),
                ));
            }
        }
        for e in &raw.scope.exclude_projects {
            let valid = !e.get_ref().is_empty()
                && e.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':' | '_' | '*'));
            if !valid {
                return Err(at(
                    e.span(),
                    format!(
                        "scope.exclude_projects: {:?} is not a project ID glob (lowercase letters, digits, - . : _ and *)",
                        e.get_ref()
                    ),
                ));
            }
        }
        if source == Source::Gcp
            && raw.scope.projects.is_empty()
            && raw.scope.project_query.is_none()
            && raw.scope.folders.is_empty()
        {
            return Err(ConfigError(format!(
                "{}: [scope] needs projects = [...], project_query = \"...\" or folders = [...] to audit anything",
                path.display()
            )));
        }
        let kinds = raw.scope.kinds.unwrap_or_else(|| Kind::ALL.to_vec());
        if kinds.is_empty() {
            return Err(ConfigError(format!("{}: scope.kinds is empty: nothing to audit", path.display())));
        }

        let endpoints = Endpoints {
            run: endpoint(raw.gcp.endpoints.run, "https://run.googleapis.com", "gcp.endpoints.run", &at)?,
            functions: endpoint(
                raw.gcp.endpoints.functions,
                "https://cloudfunctions.googleapis.com",
                "gcp.endpoints.functions",
                &at,
            )?,
            binaryauthorization: endpoint(
                raw.gcp.endpoints.binaryauthorization,
                "https://binaryauthorization.googleapis.com",
                "gcp.endpoints.binaryauthorization",
                &at,
            )?,
            resourcemanager: endpoint(
                raw.gcp.endpoints.resourcemanager,
                "https://cloudresourcemanager.googleapis.com",
                "gcp.endpoints.resourcemanager",
                &at,
            )?,
            asset: endpoint(raw.gcp.endpoints.asset, "https://cloudasset.googleapis.com", "gcp.endpoints.asset", &at)?,
            oauth2: endpoint(raw.gcp.endpoints.oauth2, "https://oauth2.googleapis.com", "gcp.endpoints.oauth2", &at)?,
            iamcredentials: endpoint(
                raw.gcp.endpoints.iamcredentials,
                "https://iamcredentials.googleapis.com",
                "gcp.endpoints.iamcredentials",
                &at,
            )?,
        };

        let impersonate_service_account = match &raw.gcp.impersonate_service_account {
            Some(sa) => Some(
                crate::collect::auth::service_account_name(sa.get_ref())
                    .map_err(|e| at(sa.span(), format!("gcp.impersonate_service_account: {e}")))?,
            ),
            None => None,
        };
        let mut delegates = Vec::new();
        for d in &raw.gcp.delegates {
            if impersonate_service_account.is_none() {
                return Err(at(d.span(), "gcp.delegates needs gcp.impersonate_service_account".into()));
            }
            let email = crate::collect::auth::service_account_name(d.get_ref())
                .map_err(|e| at(d.span(), format!("gcp.delegates: {e}")))?;
            delegates.push(crate::collect::auth::delegate_name(&email));
        }
        if let Some(q) = &raw.gcp.quota_project {
            validate_identifier(q.get_ref()).map_err(|m| at(q.span(), format!("gcp.quota_project: {m}")))?;
        }

        let concurrency = raw.gcp.concurrency.unwrap_or_else(|| Spanned::new(0..0, 16));
        if !(1..=1024).contains(concurrency.get_ref()) {
            return Err(at(concurrency.span(), "gcp.concurrency must be between 1 and 1024".into()));
        }

        let max_connections = raw.server.max_connections.unwrap_or_else(|| Spanned::new(0..0, 1024));
        if !(1..=65_536).contains(max_connections.get_ref()) {
            return Err(at(max_connections.span(), "server.max_connections must be between 1 and 65536".into()));
        }
        let defaults = ServerLimits::default();
        let limits = ServerLimits {
            max_connections: *max_connections.get_ref(),
            header_read_timeout: raw.server.header_read_timeout.map_or(defaults.header_read_timeout, |d| d.0),
            idle_timeout: raw.server.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
            write_timeout: raw.server.write_timeout.map_or(defaults.write_timeout, |d| d.0),
        };

        let alertmanager = match raw.alertmanager {
            None => None,
            Some(am) => {
                let mut urls = Vec::new();
                for u in am.urls {
                    urls.push(endpoint(Some(u), "", "alertmanager.urls", &at)?);
                }
                if urls.is_empty() {
                    return Err(ConfigError(format!("{}: [alertmanager] needs urls = [...]", path.display())));
                }
                // Two Authorization headers would reach Alertmanager, which honours neither reliably.
                if let (Some(token), Some(_)) = (&am.bearer_token_file, &am.basic_auth_username) {
                    return Err(at(
                        token.span(),
                        "alertmanager.bearer_token_file and basic_auth_username/basic_auth_password_file exclude each other: set one".into(),
                    ));
                }
                let basic_auth = match (am.basic_auth_username, am.basic_auth_password_file) {
                    (Some(user), Some(file)) => Some((user, base.join(file))),
                    (None, None) => None,
                    _ => {
                        return Err(ConfigError(format!(
                            "{}: alertmanager.basic_auth_username and basic_auth_password_file go together",
                            path.display()
                        )));
                    }
                };
                Some(Alertmanager {
                    urls,
                    bearer_token_file: am.bearer_token_file.map(|p| base.join(p.into_inner())),
                    basic_auth,
                    timeout: am.timeout.0,
                })
            }
        };

        Ok(Config {
            path: path.to_owned(),
            suppressions: Suppressions(raw.suppressions),
            alertmanager,
            scope: Scope {
                projects: dedup(raw.scope.projects.into_iter().map(Spanned::into_inner).collect()),
                project_query: raw.scope.project_query.filter(|q| !q.trim().is_empty()),
                folders: dedup(raw.scope.folders.into_iter().map(Spanned::into_inner).collect()),
                exclude_projects: raw.scope.exclude_projects.into_iter().map(Spanned::into_inner).collect(),
                regions: dedup(raw.scope.regions.into_iter().map(Spanned::into_inner).collect()),
                kinds: dedup(kinds),
                project_query_ttl: raw.scope.project_query_ttl.map_or(Duration::from_secs(3600), |d| d.0),
            },
            schedule: raw.schedule.cron,
            run_on_start: raw.schedule.run_on_start,
            gcp: Gcp {
                credentials_file: raw.gcp.credentials_file.map(|p| base.join(p)),
                allow_world_readable_credentials: raw.gcp.allow_world_readable_credentials,
                impersonate_service_account,
                delegates,
                quota_project: raw.gcp.quota_project.map(Spanned::into_inner),
                concurrency: *concurrency.get_ref(),
                request_timeout: raw.gcp.request_timeout.0,
                token_timeout: raw.gcp.token_timeout.0,
                max_retries: raw.gcp.max_retries,
                retry_min_delay: raw.gcp.retry_min_delay.0,
                retry_max_delay: raw.gcp.retry_max_delay.0.max(raw.gcp.retry_min_delay.0),
                endpoints,
                run_api: raw.gcp.run_api,
                rate_limits: raw.gcp.rate_limits,
            },
            rules: Rules {
                accepted_policies: raw.rules.accepted_policies,
                allow_breakglass: raw.rules.allow_breakglass,
            },
            server: Server {
                listen: raw.server.listen,
                web_config: raw.server.web_config.map(|p| base.join(p)),
                limits,
            },
            source,
        })
    }
}

fn dedup<T: Ord + Clone>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v.dedup();
    v
}

/// Project IDs and regions end up in URL paths: refuse anything that could escape one.
fn validate_identifier(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 100
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':' | '_'));
    if ok { Ok(()) } else { Err(format!("{s:?} is not a valid identifier (lowercase letters, digits, - . : _)")) }
}

fn endpoint(
    value: Option<Spanned<String>>,
    default: &str,
    key: &str,
    at: &impl Fn(Range<usize>, String) -> ConfigError,
) -> Result<String, ConfigError> {
    let Some(value) = value else {
        return Ok(default.to_owned());
    };
    // Errors quote the URL without any user:password part: they end up in logs.
    let shown = without_userinfo(value.get_ref());
    let url = reqwest::Url::parse(value.get_ref()).map_err(|e| at(value.span(), format!("{key}: {e}: {shown:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(at(value.span(), format!("{key}: {shown:?} is not an http(s) URL")));
    }
    // A password in a URL leaks into metric labels and logs, and reqwest would send it as a
    // second Authorization header next to basic_auth_*/bearer_token_file.
    if !url.username().is_empty() || url.password().is_some() {
        let hint = if key == "alertmanager.urls" {
            "; use alertmanager.basic_auth_username and basic_auth_password_file"
        } else {
            ""
        };
        return Err(at(value.span(), format!("{key}: {shown:?} carries credentials (user:password@), refused{hint}")));
    }
    Ok(value.get_ref().trim_end_matches('/').to_owned())
}

/// `scheme://user:pass@host/...` -> `scheme://***@host/...`; anything else unchanged.
fn without_userinfo(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        return raw.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => raw.to_owned(),
    }
}

fn position(path: &Path, text: &str, span: Range<usize>) -> String {
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    format!("{}:{line}:{column}", path.display())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    scope: RawScope,
    schedule: RawSchedule,
    gcp: RawGcp,
    rules: RawRules,
    server: RawServer,
    source: RawSource,
    suppressions: Vec<Suppression>,
    alertmanager: Option<RawAlertmanager>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertmanager {
    urls: Vec<Spanned<String>>,
    bearer_token_file: Option<Spanned<PathBuf>>,
    basic_auth_username: Option<String>,
    basic_auth_password_file: Option<PathBuf>,
    #[serde(default = "ten_seconds")]
    timeout: HumanDuration,
}

fn ten_seconds() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawScope {
    projects: Vec<Spanned<String>>,
    project_query: Option<String>,
    folders: Vec<Spanned<String>>,
    exclude_projects: Vec<Spanned<String>>,
    regions: Vec<Spanned<String>>,
    kinds: Option<Vec<Kind>>,
    project_query_ttl: Option<HumanDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSchedule {
    #[serde(deserialize_with = "schedule")]
    cron: Schedule,
    run_on_start: bool,
}

impl Default for RawSchedule {
    fn default() -> Self {
        RawSchedule { cron: Schedule::parse(DEFAULT_CRON).expect("the default schedule parses"), run_on_start: true }
    }
}

pub const DEFAULT_CRON: &str = "*/15 * * * *";

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawGcp {
    credentials_file: Option<PathBuf>,
    allow_world_readable_credentials: bool,
    impersonate_service_account: Option<Spanned<String>>,
    delegates: Vec<Spanned<String>>,
    quota_project: Option<Spanned<String>>,
    concurrency: Option<Spanned<usize>>,
    request_timeout: HumanDuration,
    token_timeout: HumanDuration,
    max_retries: usize,
    retry_min_delay: HumanDuration,
    retry_max_delay: HumanDuration,
    endpoints: RawEndpoints,
    run_api: RunApi,
    rate_limits: RateLimits,
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
struct RawEndpoints {
    run: Option<Spanned<String>>,
    functions: Option<Spanned<String>>,
    binaryauthorization: Option<Spanned<String>>,
    resourcemanager: Option<Spanned<String>>,
    asset: Option<Spanned<String>>,
    oauth2: Option<Spanned<String>>,
    iamcredentials: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRules {
    accepted_policies: Vec<String>,
    allow_breakglass: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawServer {
    listen: SocketAddr,
    web_config: Option<PathBuf>,
    max_connections: Option<Spanned<usize>>,
    header_read_timeout: Option<HumanDuration>,
    idle_timeout: Option<HumanDuration>,
    write_timeout: Option<HumanDuration>,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
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
struct RawSource {
    kind: Spanned<String>,
    path: Option<PathBuf>,
    scope: Option<Spanned<String>>,
}

impl Default for RawSource {
    fn default() -> Self {
        RawSource { kind: Spanned::new(0..0, "gcp".into()), path: None, scope: None }
    }
}

/// `"30s"`, `"2m"`, `"1h 30m"`: humantime's format.
#[derive(Debug, Clone, Copy)]
struct HumanDuration(Duration);

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
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:9464");
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
}
