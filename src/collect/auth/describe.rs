//! What check-config says about credentials: which file (or the metadata server) and why, each
//! hop of the chain, the identity API calls are made as, and the quota project. Names,
//! endpoints and emails only: never a secret, a URL query or a header value.

use std::fmt::Write;

use super::error::without_query;
use super::external::subject::Format;
use super::file::{ExternalSpec, Parsed, SourceSpec, Spec};
use super::resolve::{Credential, Plan};
use crate::config::Gcp;

pub struct Description {
    pub text: String,
    /// Who API calls are made as.
    pub identity: String,
    /// Where the credentials come from (the first line, without its label).
    pub source: String,
}

pub fn describe(plan: &Plan, gcp: &Gcp) -> Description {
    let mut out = String::new();
    let mut identity = match &plan.credential {
        Credential::File { path, origin, parsed } => {
            let _ = writeln!(out, "credentials: {} from {} ({})", parsed.kind, path.display(), origin.label());
            spec(&mut out, parsed, gcp, "  ")
        }
        Credential::Metadata { metadata, from_env, adc_file } => {
            let why = match adc_file {
                Some(p) => format!(
                    "no credentials file: gcp.credentials_file and GOOGLE_APPLICATION_CREDENTIALS unset, no {}",
                    p.display()
                ),
                None => {
                    "no credentials file: gcp.credentials_file, GOOGLE_APPLICATION_CREDENTIALS, CLOUDSDK_CONFIG and HOME unset".into()
                }
            };
            let host = if *from_env { "GCE_METADATA_HOST" } else { "the default address; GCE_METADATA_HOST unset" };
            let _ = writeln!(out, "credentials: metadata server at {} ({host})", metadata.base());
            let _ = writeln!(out, "  {why}");
            let _ = writeln!(out, "  reached directly, never through a proxy");
            "the metadata server's default service account (of the VM, GKE workload or Cloud Run service)".to_owned()
        }
    };
    if let Some((target, delegates)) = &plan.impersonate {
        let _ = writeln!(
            out,
            "impersonation: {target}{} at {} (gcp.impersonate_service_account), with the credentials above as the caller",
            via(delegates),
            gcp.endpoints.iamcredentials
        );
        identity = target.clone();
    }
    let _ = writeln!(out, "API calls as: {identity}");
    match &plan.quota_project {
        Some((project, from)) => {
            let _ = writeln!(out, "quota project: {project} ({from}), sent as x-goog-user-project on API calls");
        }
        None => {
            let _ = writeln!(out, "quota project: none (no x-goog-user-project header)");
        }
    }
    for note in &plan.notes {
        let _ = writeln!(out, "note: {note}");
    }
    let source = out.lines().next().unwrap_or_default().trim_start_matches("credentials: ").to_owned();
    Description { text: out, identity, source }
}

fn via(delegates: &[String]) -> String {
    if delegates.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = delegates.iter().map(|d| d.trim_start_matches("projects/-/serviceAccounts/")).collect();
    format!(" via {}", names.join(" -> "))
}

/// Writes the hop(s) of one parsed file; returns the identity its tokens carry.
fn spec(out: &mut String, parsed: &Parsed, gcp: &Gcp, indent: &str) -> String {
    match &parsed.spec {
        Spec::ServiceAccount(s) => {
            let key = s.key_id.as_deref().map(|k| format!(", key {k}")).unwrap_or_default();
            let _ = writeln!(out, "{indent}service account {}{key}, token endpoint {}", s.email, s.token_uri);
            s.email.clone()
        }
        Spec::AuthorizedUser(u) => {
            let account = u.account.as_deref().map(|a| format!(", account {a}")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{indent}a person's credentials (OAuth client {}{account}), refreshed at {}/token",
                u.client_id, gcp.endpoints.oauth2
            );
            match &u.account {
                Some(a) => a.clone(),
                None => "the person who ran gcloud auth application-default login".to_owned(),
            }
        }
        Spec::Impersonated(i) => {
            let _ = writeln!(out, "{indent}source: {}", i.source.kind);
            spec(out, &i.source, gcp, &format!("{indent}  "));
            let _ = writeln!(
                out,
                "{indent}impersonates {}{} at {} (the file's service_account_impersonation_url names the account)",
                i.target,
                via(&i.delegates),
                gcp.endpoints.iamcredentials
            );
            i.target.clone()
        }
        Spec::External(e) => external(out, e, indent),
    }
}

fn external(out: &mut String, e: &ExternalSpec, indent: &str) -> String {
    let format = |f: &Format| match f {
        Format::Text => "text".to_owned(),
        Format::Json { field } => format!("JSON field {field}"),
    };
    let source = match &e.source {
        SourceSpec::File { path, format: f } => format!("file {} ({})", path.display(), format(f)),
        SourceSpec::Url { url, headers, format: f } => {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            let headers = if names.is_empty() { String::new() } else { format!(", headers {}", names.join(", ")) };
            format!("URL {} ({}{headers})", without_query(url), format(f))
        }
        SourceSpec::Executable { argv, timeout, output_file } => {
            let cache = output_file.as_ref().map(|p| format!(", output file {}", p.display())).unwrap_or_default();
            format!("executable {} (timeout {timeout:?}{cache})", argv.join(" "))
        }
        SourceSpec::Aws { region_url, credentials_url, verification_url, imdsv2_url } => {
            let show = |u: &Option<url::Url>| u.as_ref().map_or("unset".to_owned(), without_query);
            format!(
                "AWS: region from AWS_REGION/AWS_DEFAULT_REGION or {}, keys from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or {}, IMDSv2 session {}, signed for {verification_url}",
                show(region_url),
                show(credentials_url),
                show(imdsv2_url)
            )
        }
    };
    let _ = writeln!(out, "{indent}subject token: {source}");
    let client = e.client.as_ref().map(|(id, _)| format!(", client {id}")).unwrap_or_default();
    let workforce =
        e.workforce_user_project.as_ref().map(|p| format!(", workforce user project {p}")).unwrap_or_default();
    let _ = writeln!(out, "{indent}token exchange: {}, audience {}{client}{workforce}", e.token_url, e.audience);
    match &e.impersonation {
        Some(i) => {
            let _ = writeln!(
                out,
                "{indent}impersonates {} at {} (lifetime {}s)",
                i.email,
                without_query(&i.url),
                i.lifetime.as_secs()
            );
            i.email.clone()
        }
        None => format!("the federated principal of {}", e.audience),
    }
}
