//! From the file as written to the checked configuration, one section at a time: defaults
//! filled in, relative paths anchored at the config's folder, every refusal one line that
//! names file:line:column and the key.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::raw::{
    RawAlertmanager, RawEndpoints, RawEvents, RawGcp, RawMetrics, RawScope, RawServer, RawSource, RawValidation,
};
use super::{
    Alertmanager, ConfigError, Endpoints, Events, Gcp, MetricsConfig, ResourceLabel, Scope, Server, ServerLimits,
    Source, Validation,
};
use crate::collect::auth;
use crate::inventory::Kind;

/// Where the text came from, to turn spans into positions and relative paths into absolute ones.
pub(super) struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
    base: &'a Path,
}

impl<'a> Ctx<'a> {
    pub fn new(path: &'a Path, text: &'a str) -> Self {
        Ctx { path, text, base: path.parent().unwrap_or(Path::new(".")) }
    }

    /// An error at a value's position.
    fn at(&self, span: Range<usize>, msg: impl Into<String>) -> ConfigError {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError(format!("{}:{line}:{column}: {}", self.path.display(), msg.into()))
    }

    /// An error about the file as a whole (something missing has no position).
    fn whole(&self, msg: impl Into<String>) -> ConfigError {
        ConfigError(format!("{}: {}", self.path.display(), msg.into()))
    }

    pub fn toml_error(&self, e: &toml::de::Error) -> ConfigError {
        let message = e.message().trim().replace('\n', " ");
        match e.span() {
            Some(span) => self.at(span, message),
            None => self.whole(message),
        }
    }

    fn relative(&self, path: impl AsRef<Path>) -> PathBuf {
        self.base.join(path)
    }
}

impl RawSource {
    pub(super) fn resolve(self, ctx: &Ctx) -> Result<Source, ConfigError> {
        let kind = &self.kind;
        match (kind.get_ref().as_str(), self.path) {
            ("gcp", _) => Ok(Source::Gcp),
            ("asset_inventory", _) => {
                let scope = self
                    .scope
                    .as_ref()
                    .ok_or_else(|| ctx.at(kind.span(), "source.kind = \"asset_inventory\" needs source.scope"))?;
                let valid = match scope.get_ref().split_once('/') {
                    Some(("organizations" | "folders" | "projects", id)) => validate_identifier(id).is_ok(),
                    _ => false,
                };
                if !valid {
                    let msg =
                        format!("source.scope: {:?} is not organizations/N, folders/N or projects/P", scope.get_ref());
                    return Err(ctx.at(scope.span(), msg));
                }
                Ok(Source::AssetInventory { scope: scope.get_ref().clone() })
            }
            ("snapshot", Some(p)) => Ok(Source::Snapshot { path: ctx.relative(p) }),
            ("snapshot", None) => Err(ctx.at(kind.span(), "source.kind = \"snapshot\" needs source.path")),
            (other, _) => Err(ctx.at(
                kind.span(),
                format!("source.kind: unknown source {other:?}, expected \"gcp\", \"snapshot\" or \"asset_inventory\""),
            )),
        }
    }
}

impl RawScope {
    /// Project discovery (`project_query`, `folders`) is a Google source's own: a snapshot
    /// or an asset feed already holds its projects, and a key it would silently ignore is
    /// refused instead. `projects`, `exclude_projects`, `regions` and `kinds` narrow every
    /// source alike.
    pub(super) fn resolve(self, ctx: &Ctx, source: &Source) -> Result<Scope, ConfigError> {
        for p in &self.projects {
            validate_identifier(p.get_ref()).map_err(|m| ctx.at(p.span(), format!("scope.projects: {m}")))?;
        }
        for r in &self.regions {
            validate_identifier(r.get_ref()).map_err(|m| ctx.at(r.span(), format!("scope.regions: {m}")))?;
        }
        for f in &self.folders {
            let valid = matches!(f.get_ref().split_once('/'),
                Some(("folders" | "organizations", n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            if !valid {
                let msg = format!("scope.folders: {:?} is not folders/N or organizations/N", f.get_ref());
                return Err(ctx.at(f.span(), msg));
            }
        }
        for e in &self.exclude_projects {
            let valid = !e.get_ref().is_empty()
                && e.get_ref()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':' | '_' | '*'));
            if !valid {
                let msg = format!(
                    "scope.exclude_projects: {:?} is not a project ID glob (lowercase letters, digits, - . : _ and *)",
                    e.get_ref()
                );
                return Err(ctx.at(e.span(), msg));
            }
        }

        let project_query = self.project_query.filter(|q| !q.get_ref().trim().is_empty());
        if *source == Source::Gcp {
            if self.projects.is_empty() && project_query.is_none() && self.folders.is_empty() {
                return Err(ctx.whole(
                    "[scope] needs projects = [...], project_query = \"...\" or folders = [...] to audit anything",
                ));
            }
        } else {
            let source_kind = if matches!(source, Source::Snapshot { .. }) { "snapshot" } else { "asset_inventory" };
            let discovery_only = [
                ("project_query", project_query.as_ref().map(Spanned::span)),
                ("folders", self.folders.first().map(Spanned::span)),
                ("project_query_ttl", self.project_query_ttl.as_ref().map(Spanned::span)),
            ];
            if let Some((key, Some(span))) = discovery_only.into_iter().find(|(_, span)| span.is_some()) {
                return Err(ctx.at(
                    span,
                    format!(
                        "scope.{key} finds projects through Google's APIs and does nothing with source.kind = \"{source_kind}\"; remove it, or use scope.projects"
                    ),
                ));
            }
        }

        let kinds = match self.kinds {
            None => Kind::ALL.to_vec(),
            Some(k) if k.get_ref().is_empty() => return Err(ctx.at(k.span(), "scope.kinds is empty: nothing to audit")),
            Some(k) => k.into_inner(),
        };
        Ok(Scope {
            projects: dedup(self.projects.into_iter().map(Spanned::into_inner).collect()),
            project_query: project_query.map(Spanned::into_inner),
            folders: dedup(self.folders.into_iter().map(Spanned::into_inner).collect()),
            exclude_projects: self.exclude_projects.into_iter().map(Spanned::into_inner).collect(),
            regions: dedup(self.regions.into_iter().map(Spanned::into_inner).collect()),
            kinds: dedup(kinds),
            project_query_ttl: self.project_query_ttl.map_or(Duration::from_secs(3600), |d| d.into_inner().0),
        })
    }
}

impl RawGcp {
    pub(super) fn resolve(self, ctx: &Ctx) -> Result<Gcp, ConfigError> {
        let impersonate_service_account = match &self.impersonate_service_account {
            Some(sa) => Some(
                auth::service_account_name(sa.get_ref())
                    .map_err(|e| ctx.at(sa.span(), format!("gcp.impersonate_service_account: {e}")))?,
            ),
            None => None,
        };
        let mut delegates = Vec::new();
        for d in &self.delegates {
            if impersonate_service_account.is_none() {
                return Err(ctx.at(d.span(), "gcp.delegates needs gcp.impersonate_service_account"));
            }
            let email =
                auth::service_account_name(d.get_ref()).map_err(|e| ctx.at(d.span(), format!("gcp.delegates: {e}")))?;
            delegates.push(auth::delegate_name(&email));
        }
        if let Some(q) = &self.quota_project {
            validate_identifier(q.get_ref()).map_err(|m| ctx.at(q.span(), format!("gcp.quota_project: {m}")))?;
        }
        let concurrency = self.concurrency.unwrap_or_else(|| Spanned::new(0..0, 16));
        if !(1..=1024).contains(concurrency.get_ref()) {
            return Err(ctx.at(concurrency.span(), "gcp.concurrency must be between 1 and 1024"));
        }
        Ok(Gcp {
            credentials_file: self.credentials_file.map(|p| ctx.relative(p)),
            allow_world_readable_credentials: self.allow_world_readable_credentials,
            impersonate_service_account,
            delegates,
            quota_project: self.quota_project.map(Spanned::into_inner),
            concurrency: concurrency.into_inner(),
            request_timeout: self.request_timeout.0,
            token_timeout: self.token_timeout.0,
            max_retries: self.max_retries,
            retry_min_delay: self.retry_min_delay.0,
            retry_max_delay: self.retry_max_delay.0.max(self.retry_min_delay.0),
            endpoints: self.endpoints.resolve(ctx)?,
            run_api: self.run_api,
            rate_limits: self.rate_limits,
        })
    }
}

impl RawEndpoints {
    fn resolve(self, ctx: &Ctx) -> Result<Endpoints, ConfigError> {
        let google = Endpoints::google();
        let pick = |value: Option<Spanned<String>>, default: String, key: &str| match value {
            Some(v) => endpoint(ctx, &v, key),
            None => Ok(default),
        };
        Ok(Endpoints {
            run: pick(self.run, google.run, "gcp.endpoints.run")?,
            functions: pick(self.functions, google.functions, "gcp.endpoints.functions")?,
            binaryauthorization: pick(
                self.binaryauthorization,
                google.binaryauthorization,
                "gcp.endpoints.binaryauthorization",
            )?,
            resourcemanager: pick(self.resourcemanager, google.resourcemanager, "gcp.endpoints.resourcemanager")?,
            asset: pick(self.asset, google.asset, "gcp.endpoints.asset")?,
            oauth2: pick(self.oauth2, google.oauth2, "gcp.endpoints.oauth2")?,
            iamcredentials: pick(self.iamcredentials, google.iamcredentials, "gcp.endpoints.iamcredentials")?,
            pubsub: pick(self.pubsub, google.pubsub, "gcp.endpoints.pubsub")?,
            containeranalysis: pick(
                self.containeranalysis,
                google.containeranalysis,
                "gcp.endpoints.containeranalysis",
            )?,
        })
    }
}

impl RawServer {
    pub(super) fn resolve(self, ctx: &Ctx) -> Result<Server, ConfigError> {
        let defaults = ServerLimits::default();
        let max_connections = self.max_connections.unwrap_or_else(|| Spanned::new(0..0, defaults.max_connections));
        if !(1..=65_536).contains(max_connections.get_ref()) {
            return Err(ctx.at(max_connections.span(), "server.max_connections must be between 1 and 65536"));
        }
        Ok(Server {
            listen: self.listen,
            web_config: self.web_config.map(|p| ctx.relative(p)),
            limits: ServerLimits {
                max_connections: max_connections.into_inner(),
                header_read_timeout: self.header_read_timeout.map_or(defaults.header_read_timeout, |d| d.0),
                idle_timeout: self.idle_timeout.map_or(defaults.idle_timeout, |d| d.0),
                write_timeout: self.write_timeout.map_or(defaults.write_timeout, |d| d.0),
            },
        })
    }
}

impl RawAlertmanager {
    pub(super) fn resolve(self, ctx: &Ctx) -> Result<Alertmanager, ConfigError> {
        if self.urls.get_ref().is_empty() {
            return Err(ctx.at(self.urls.span(), "alertmanager.urls is empty: name every Alertmanager instance"));
        }
        let urls =
            self.urls.get_ref().iter().map(|u| endpoint(ctx, u, "alertmanager.urls")).collect::<Result<_, _>>()?;
        // Two Authorization headers would reach Alertmanager, which honours neither reliably.
        if let (Some(token), Some(_)) = (&self.bearer_token_file, &self.basic_auth_username) {
            return Err(ctx.at(
                token.span(),
                "alertmanager.bearer_token_file and basic_auth_username/basic_auth_password_file exclude each other: set one",
            ));
        }
        let basic_auth = match (self.basic_auth_username, self.basic_auth_password_file) {
            (Some(user), Some(file)) => Some((user.into_inner(), ctx.relative(file.into_inner()))),
            (None, None) => None,
            (Some(one), None) => return Err(ctx.at(one.span(), BASIC_AUTH_PAIR)),
            (None, Some(one)) => return Err(ctx.at(one.span(), BASIC_AUTH_PAIR)),
        };
        let resend_interval = self.resend_interval.get_ref().0;
        if resend_interval > Duration::from_secs(3600) {
            return Err(ctx.at(
                self.resend_interval.span(),
                "alertmanager.resend_interval must be at most 1h (Alertmanager expects alerts again every 30s to 3m)",
            ));
        }
        let external_url =
            self.external_url.as_ref().map(|u| endpoint(ctx, u, "alertmanager.external_url")).transpose()?;
        let tls_client = match (self.tls_cert_file, self.tls_key_file) {
            (Some(cert), Some(key)) => Some((ctx.relative(cert.into_inner()), ctx.relative(key.into_inner()))),
            (None, None) => None,
            (Some(one), None) => return Err(ctx.at(one.span(), TLS_CLIENT_PAIR)),
            (None, Some(one)) => return Err(ctx.at(one.span(), TLS_CLIENT_PAIR)),
        };
        let mut extra_labels = BTreeMap::new();
        for (name, value) in self.extra_labels {
            check_extra_label(&name, value.get_ref()).map_err(|m| ctx.at(value.span(), m))?;
            extra_labels.insert(name, value.into_inner());
        }
        Ok(Alertmanager {
            urls,
            bearer_token_file: self.bearer_token_file.map(|p| ctx.relative(p.into_inner())),
            basic_auth,
            timeout: self.timeout.0,
            resend_interval,
            external_url,
            tls_ca_file: self.tls_ca_file.map(|p| ctx.relative(p.into_inner())),
            tls_client,
            extra_labels,
        })
    }
}

const TLS_CLIENT_PAIR: &str = "alertmanager.tls_cert_file and tls_key_file go together";

/// A Prometheus label name the alerts do not set themselves, with a value.
fn check_extra_label(name: &str, value: &str) -> Result<(), String> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__");
    if !valid {
        return Err(format!(
            "alertmanager.extra_labels: {name:?} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
        ));
    }
    if crate::alertmanager::OWN_LABELS.contains(&name) || name.starts_with("label_") {
        return Err(format!("alertmanager.extra_labels.{name} would collide with a label the alerts set themselves"));
    }
    if value.is_empty() {
        return Err(format!("alertmanager.extra_labels.{name} is empty (an empty label is no label)"));
    }
    Ok(())
}

impl RawEvents {
    /// Events are triggers to read again from Google: a snapshot has nothing to read again.
    pub(super) fn resolve(self, ctx: &Ctx, source: &Source) -> Result<Events, ConfigError> {
        let subscription = &self.subscription;
        if let Source::Snapshot { .. } = source {
            return Err(ctx.at(
                subscription.span(),
                "events.subscription: event mode re-reads what changed from Google's APIs and cannot work with source.kind = \"snapshot\"",
            ));
        }
        let valid = match subscription.get_ref().split('/').collect::<Vec<_>>().as_slice() {
            ["projects", project, "subscriptions", name] => {
                validate_identifier(project).is_ok() && valid_pubsub_name(name)
            }
            _ => false,
        };
        if !valid {
            let msg =
                format!("events.subscription: {:?} is not projects/PROJECT/subscriptions/NAME", subscription.get_ref());
            return Err(ctx.at(subscription.span(), msg));
        }
        Ok(Events { subscription: subscription.get_ref().clone(), feed: self.source })
    }
}

impl RawValidation {
    /// Revisions and attestations are read from Google's APIs: a snapshot holds neither.
    pub(super) fn resolve(self, ctx: &Ctx, source: &Source) -> Result<Option<Validation>, ConfigError> {
        let Some(enabled) = self.enabled.filter(|e| *e.get_ref()) else { return Ok(None) };
        if let Source::Snapshot { .. } = source {
            return Err(ctx.at(
                enabled.span(),
                "validation.enabled: continuous validation reads revisions and attestations from Google's APIs and cannot work with source.kind = \"snapshot\"",
            ));
        }
        Ok(Some(Validation { recheck_interval: self.recheck_interval.map_or(Duration::from_secs(3600), |d| d.0) }))
    }
}

/// Pub/Sub's rule for subscription IDs: 3-255 characters, a letter first, then letters,
/// digits and `-_.~+%`.
fn valid_pubsub_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.~+%".contains(c))
}

impl RawMetrics {
    /// Each label key becomes one Prometheus label name; two keys that would share a name,
    /// or labels with no per-workload series to ride on, are refused.
    pub(super) fn resolve(self, ctx: &Ctx) -> Result<MetricsConfig, ConfigError> {
        let mut resource_labels: Vec<ResourceLabel> = Vec::new();
        for key in &self.resource_labels {
            let k = key.get_ref();
            // Google's rule for label keys: 1 to 63 characters.
            if k.is_empty() || k.chars().count() > 63 || k.chars().any(char::is_control) {
                let msg = format!("metrics.resource_labels: {k:?} is not a Cloud Run label key (1 to 63 characters)");
                return Err(ctx.at(key.span(), msg));
            }
            if !*self.per_workload.get_ref() {
                return Err(ctx.at(
                    key.span(),
                    "metrics.resource_labels labels per-workload series, which metrics.per_workload = false turns off; remove one of them",
                ));
            }
            let name = prometheus_label_name(k);
            match resource_labels.iter().find(|l| l.name == name) {
                Some(same) if same.key == *k => {}
                Some(same) => {
                    let msg = format!(
                        "metrics.resource_labels: {k:?} and {:?} would both be exported as {name}; keep one",
                        same.key
                    );
                    return Err(ctx.at(key.span(), msg));
                }
                None => resource_labels.push(ResourceLabel { key: k.clone(), name }),
            }
        }
        resource_labels.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(MetricsConfig { per_workload: self.per_workload.into_inner(), resource_labels })
    }
}

/// `label_` + `key` with every character outside `[a-zA-Z0-9_]` replaced by `_`, as
/// kube-state-metrics names Kubernetes labels (the prefix keeps names off the reserved `__`).
fn prometheus_label_name(key: &str) -> String {
    let sanitised: String = key.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    format!("label_{sanitised}")
}

const BASIC_AUTH_PAIR: &str = "alertmanager.basic_auth_username and basic_auth_password_file go together";

fn dedup<T: Ord>(mut v: Vec<T>) -> Vec<T> {
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

/// An http(s) base URL, without a trailing slash.
fn endpoint(ctx: &Ctx, value: &Spanned<String>, key: &str) -> Result<String, ConfigError> {
    // Errors quote the URL without any user:password part: they end up in logs.
    let shown = without_userinfo(value.get_ref());
    let url =
        reqwest::Url::parse(value.get_ref()).map_err(|e| ctx.at(value.span(), format!("{key}: {e}: {shown:?}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(ctx.at(value.span(), format!("{key}: {shown:?} is not an http(s) URL")));
    }
    // A password in a URL leaks into metric labels and logs, and reqwest would send it as a
    // second Authorization header next to basic_auth_*/bearer_token_file.
    if !url.username().is_empty() || url.password().is_some() {
        let hint = if key == "alertmanager.urls" {
            "; use alertmanager.basic_auth_username and basic_auth_password_file"
        } else {
            ""
        };
        return Err(
            ctx.at(value.span(), format!("{key}: {shown:?} carries credentials (user:password@), refused{hint}"))
        );
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
