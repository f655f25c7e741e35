//! Credential files as Application Default Credentials accept them — `service_account`,
//! `authorized_user`, `impersonated_service_account`, `external_account` — read and checked
//! completely before anything runs, so a file the auditor cannot use is refused at start with
//! its type and the reason, never skipped for another identity. No I/O here: the caller reads.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use gcp_auth::CustomServiceAccount;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use url::Url;

use super::error::serde_message;
use super::external::subject::Format;
use super::secret::Secret;
use crate::error::error_chain;

pub const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const TYPES: &str = "service_account, authorized_user, impersonated_service_account or external_account";

/// Why a file is refused: its `type` as written (or what stood in for it) and the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub kind: String,
    pub problem: String,
}

fn refuse<T>(kind: &str, problem: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal { kind: kind.to_owned(), problem: problem.into() })
}

pub struct Parsed {
    pub kind: &'static str,
    pub spec: Spec,
    /// The file's top-level `quota_project_id`.
    pub quota_project: Option<String>,
    /// Whether the file itself holds a secret (a key, a refresh token, a client secret).
    pub holds_secret: bool,
}

pub enum Spec {
    ServiceAccount(ServiceAccountSpec),
    AuthorizedUser(UserSpec),
    Impersonated(ImpersonatedSpec),
    External(Box<ExternalSpec>),
}

pub struct ServiceAccountSpec {
    pub email: String,
    pub token_uri: Url,
    pub key_id: Option<String>,
    /// Boxed: it is large (a key pair and a hyper client gcp_auth builds but we never use).
    pub key: Box<CustomServiceAccount>,
}

pub struct UserSpec {
    pub client_id: String,
    pub client_secret: Secret,
    pub refresh_token: Secret,
    /// gcloud writes the account, often as "".
    pub account: Option<String>,
    /// Ignored (see `user`); kept to say so in check-config.
    pub token_uri: Option<String>,
}

/// What `gcloud auth application-default login --impersonate-service-account` writes.
pub struct ImpersonatedSpec {
    pub source: Box<Parsed>,
    pub target: String,
    /// Full names, `projects/-/serviceAccounts/EMAIL`.
    pub delegates: Vec<String>,
}

pub struct ExternalSpec {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: Url,
    pub impersonation: Option<FileImpersonation>,
    pub client: Option<(String, Option<Secret>)>,
    pub workforce_user_project: Option<String>,
    pub source: SourceSpec,
}

pub struct FileImpersonation {
    /// Called exactly as written, as Google's libraries do for external accounts.
    pub url: Url,
    pub email: String,
    pub lifetime: Duration,
}

pub enum SourceSpec {
    File { path: PathBuf, format: Format },
    Url { url: Url, headers: Vec<(String, Secret)>, format: Format },
    Executable { argv: Vec<String>, timeout: Duration, output_file: Option<PathBuf> },
    Aws { region_url: Option<Url>, credentials_url: Option<Url>, verification_url: String, imdsv2_url: Option<Url> },
}

/// Parses a credentials file's text. `allow_executables`: GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1.
pub fn parse(text: &str, allow_executables: bool) -> Result<Parsed, Refusal> {
    if text.trim().is_empty() {
        // What the systemd unit hands over when no key was installed (its SetCredential= default).
        let why = "the file is empty (under the systemd unit: /etc/binauthz-auditor/credentials.json is not installed; \
                   see systemd/README.md for keys and for the metadata server)";
        return refuse("(empty)", why);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => return refuse("(unreadable)", format!("not JSON: {}", serde_message(&e))),
    };
    parse_value(&value, allow_executables)
}

fn parse_value(value: &Value, allow_executables: bool) -> Result<Parsed, Refusal> {
    let Some(object) = value.as_object() else { return refuse("(unreadable)", "not a JSON object") };
    let kind = match object.get("type") {
        None => {
            return refuse(
                "(missing)",
                format!("the file has no \"type\"; Application Default Credentials files are {TYPES}"),
            );
        }
        Some(Value::String(t)) => t.as_str(),
        Some(_) => return refuse("(not a string)", "\"type\" must be a string"),
    };
    if let Some(domain) = object.get("universe_domain").and_then(Value::as_str)
        && domain != "googleapis.com"
    {
        return refuse(kind, format!("universe_domain {:?} is not supported (only googleapis.com)", short(domain)));
    }
    match kind {
        "service_account" => service_account(value),
        "authorized_user" => authorized_user(value),
        "impersonated_service_account" => impersonated(value, allow_executables),
        "external_account" => external(value, allow_executables),
        "external_account_authorized_user" | "gdch_service_account" => {
            refuse(kind, format!("this type is not supported by binauthz-auditor; use {TYPES}"))
        }
        other => refuse(
            &format!("{:?}", short(other)),
            format!("not a credential type Application Default Credentials accept; expected {TYPES}"),
        ),
    }
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

fn fields<T: DeserializeOwned>(kind: &str, value: &Value) -> Result<T, Refusal> {
    T::deserialize(value).map_err(|e| Refusal { kind: kind.to_owned(), problem: serde_message(&e) })
}

fn url(kind: &str, field: &str, text: &str) -> Result<Url, Refusal> {
    match Url::parse(text) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => refuse(kind, format!("{field} is not an http(s) URL")),
    }
}

fn quota(kind: &str, q: Option<String>) -> Result<Option<String>, Refusal> {
    match q.filter(|q| !q.is_empty()) {
        Some(q) if !is_project_id(&q) => refuse(kind, format!("quota_project_id {:?} is not a project ID", short(&q))),
        q => Ok(q),
    }
}

/// Project IDs go into a header: lowercase letters, digits, `-`, `.` and `:` (domain-scoped).
pub fn is_project_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'))
}

/// A service account as the IAM Credentials API names it: `EMAIL`, a numeric unique ID, or
/// `projects/-/serviceAccounts/EMAIL` (the `-` is required). Returns the bare email or ID; it
/// goes into a URL path, so only the characters emails use pass.
pub fn service_account_name(s: &str) -> Result<String, String> {
    let bare = match s.strip_prefix("projects/") {
        None => s,
        Some(rest) => match rest.strip_prefix("-/serviceAccounts/") {
            Some(email) => email,
            None => return Err(format!("{s:?}: the project must be \"-\" (projects/-/serviceAccounts/EMAIL)")),
        },
    };
    let unique_id = !bare.is_empty() && bare.len() <= 30 && bare.bytes().all(|b| b.is_ascii_digit());
    let email = match bare.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && bare.len() <= 254
                && bare.chars().all(|c| c.is_ascii_alphanumeric() || "@.-_+".contains(c))
                && !domain.contains('@')
        }
        None => false,
    };
    if unique_id || email { Ok(bare.to_owned()) } else { Err(format!("{:?} is not a service account email", short(s))) }
}

#[derive(Deserialize)]
struct RawServiceAccount {
    client_email: String,
    private_key: Secret,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    quota_project_id: Option<String>,
}

fn service_account(value: &Value) -> Result<Parsed, Refusal> {
    const KIND: &str = "service_account";
    let raw: RawServiceAccount = fields(KIND, value)?;
    let email = service_account_name(&raw.client_email).or_else(|e| refuse(KIND, format!("client_email: {e}")))?;
    let token_uri = url(KIND, "token_uri", raw.token_uri.as_deref().unwrap_or(DEFAULT_TOKEN_URI))?;
    // gcp_auth's signer comes only with a CustomServiceAccount, built from the key's JSON.
    let key_json = serde_json::json!({
        "client_email": email, "private_key": raw.private_key.expose(), "token_uri": token_uri.as_str(),
    });
    let key = CustomServiceAccount::from_json(&key_json.to_string()).or_else(|e| {
        refuse(KIND, format!("not a usable service-account key (it must be PKCS#8): {}", error_chain(&e)))
    })?;
    Ok(Parsed {
        kind: KIND,
        quota_project: quota(KIND, raw.quota_project_id)?,
        holds_secret: true,
        spec: Spec::ServiceAccount(ServiceAccountSpec {
            email,
            token_uri,
            key_id: raw.private_key_id.filter(|k| !k.is_empty()),
            key: Box::new(key),
        }),
    })
}

#[derive(Deserialize)]
struct RawUser {
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    account: Option<String>,
    token_uri: Option<String>,
    quota_project_id: Option<String>,
}

fn authorized_user(value: &Value) -> Result<Parsed, Refusal> {
    const KIND: &str = "authorized_user";
    let raw: RawUser = fields(KIND, value)?;
    if raw.client_id.is_empty() || raw.refresh_token.is_empty() {
        return refuse(KIND, "client_id and refresh_token must not be empty");
    }
    Ok(Parsed {
        kind: KIND,
        quota_project: quota(KIND, raw.quota_project_id)?,
        holds_secret: true,
        spec: Spec::AuthorizedUser(UserSpec {
            client_id: raw.client_id,
            client_secret: raw.client_secret,
            refresh_token: raw.refresh_token,
            account: raw.account.filter(|a| !a.is_empty()),
            token_uri: raw.token_uri,
        }),
    })
}

#[derive(Deserialize)]
struct RawImpersonated {
    service_account_impersonation_url: String,
    source_credentials: Value,
    #[serde(default)]
    delegates: Option<Vec<String>>,
    quota_project_id: Option<String>,
}

fn impersonated(value: &Value, allow_executables: bool) -> Result<Parsed, Refusal> {
    const KIND: &str = "impersonated_service_account";
    let raw: RawImpersonated = fields(KIND, value)?;
    let target = impersonation_target(&raw.service_account_impersonation_url)
        .or_else(|e| refuse(KIND, format!("service_account_impersonation_url: {e}")))?;
    let mut delegates = Vec::new();
    for d in raw.delegates.unwrap_or_default() {
        let email = service_account_name(&d).or_else(|e| refuse(KIND, format!("delegates: {e}")))?;
        delegates.push(super::impersonate::delegate_name(&email));
    }
    let source_kind = raw.source_credentials.get("type").and_then(Value::as_str).unwrap_or("(missing)");
    if !matches!(source_kind, "authorized_user" | "service_account" | "external_account") {
        return refuse(
            KIND,
            format!(
                "source_credentials of type {:?} is not supported (authorized_user, service_account or external_account; a chain is written with delegates)",
                short(source_kind)
            ),
        );
    }
    let source = parse_value(&raw.source_credentials, allow_executables)
        .or_else(|r| refuse(KIND, format!("source_credentials (type {}): {}", r.kind, r.problem)))?;
    Ok(Parsed {
        kind: KIND,
        quota_project: quota(KIND, raw.quota_project_id)?,
        holds_secret: source.holds_secret,
        spec: Spec::Impersonated(ImpersonatedSpec { source: Box::new(source), target, delegates }),
    })
}

/// The service account of `…/serviceAccounts/EMAIL:generateAccessToken`.
fn impersonation_target(url: &str) -> Result<String, String> {
    let email = url
        .strip_suffix(":generateAccessToken")
        .and_then(|rest| rest.rsplit_once("/serviceAccounts/"))
        .map(|(_, email)| email)
        .ok_or("not …/serviceAccounts/EMAIL:generateAccessToken")?;
    service_account_name(email)
}

#[derive(Deserialize)]
struct RawExternal {
    audience: String,
    subject_token_type: String,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    service_account_impersonation: Option<RawLifetime>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    quota_project_id: Option<String>,
    workforce_pool_user_project: Option<String>,
    credential_source: RawSource,
}

#[derive(Deserialize)]
struct RawLifetime {
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct RawSource {
    file: Option<String>,
    url: Option<String>,
    headers: Option<BTreeMap<String, Secret>>,
    format: Option<RawFormat>,
    executable: Option<RawExecutable>,
    environment_id: Option<String>,
    region_url: Option<String>,
    regional_cred_verification_url: Option<String>,
    imdsv2_session_token_url: Option<String>,
    certificate: Option<Value>,
}

#[derive(Deserialize)]
struct RawFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

#[derive(Deserialize)]
struct RawExecutable {
    command: String,
    timeout_millis: Option<u64>,
    output_file: Option<String>,
}

fn external(value: &Value, allow_executables: bool) -> Result<Parsed, Refusal> {
    const KIND: &str = "external_account";
    let raw: RawExternal = fields(KIND, value)?;
    if raw.audience.is_empty() || raw.subject_token_type.is_empty() {
        return refuse(KIND, "audience and subject_token_type must not be empty");
    }
    let Some(token_url) = raw.token_url.as_deref() else { return refuse(KIND, "missing field `token_url`") };
    let token_url = url(KIND, "token_url", token_url)?;
    let lifetime = raw.service_account_impersonation.and_then(|l| l.token_lifetime_seconds).unwrap_or(3600);
    if !(600..=43200).contains(&lifetime) {
        return refuse(KIND, format!("token_lifetime_seconds {lifetime} is outside 600-43200"));
    }
    let impersonation = match raw.service_account_impersonation_url {
        None => None,
        Some(text) => {
            let email = impersonation_target(&text)
                .or_else(|e| refuse(KIND, format!("service_account_impersonation_url: {e}")))?;
            Some(FileImpersonation {
                url: url(KIND, "service_account_impersonation_url", &text)?,
                email,
                lifetime: Duration::from_secs(lifetime),
            })
        }
    };
    let workforce = raw.audience.starts_with("//iam.googleapis.com/locations/")
        && raw.audience.split('/').nth(5) == Some("workforcePools");
    let workforce_user_project = match raw.workforce_pool_user_project.filter(|p| !p.is_empty()) {
        Some(_) if !workforce => {
            return refuse(KIND, "workforce_pool_user_project is only valid for a workforce pool audience");
        }
        p => p,
    };
    let holds_secret = raw.client_secret.is_some();
    let client = raw.client_id.filter(|c| !c.is_empty()).map(|id| (id, raw.client_secret));
    Ok(Parsed {
        kind: KIND,
        quota_project: quota(KIND, raw.quota_project_id)?,
        holds_secret,
        spec: Spec::External(Box::new(ExternalSpec {
            audience: raw.audience,
            subject_token_type: raw.subject_token_type,
            token_url,
            impersonation,
            client,
            workforce_user_project,
            source: source(raw.credential_source, allow_executables)?,
        })),
    })
}

fn source(raw: RawSource, allow_executables: bool) -> Result<SourceSpec, Refusal> {
    const KIND: &str = "external_account";
    let bad = |problem: String| refuse::<SourceSpec>(KIND, format!("credential_source: {problem}"));
    if raw.certificate.is_some() {
        return bad("X.509 certificate-sourced credentials are not supported".into());
    }
    if let Some(env) = raw.environment_id {
        let version = env.strip_prefix("aws").filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()));
        return match version {
            None => bad(format!("environment_id {:?} is not supported (aws1 is)", short(&env))),
            Some(v) if v != "1" => bad(format!("aws version {v} is not supported (1 is)")),
            Some(_) => aws(raw.region_url, raw.url, raw.regional_cred_verification_url, raw.imdsv2_session_token_url),
        };
    }
    let format = format(raw.format)?;
    match (raw.file, raw.url, raw.executable) {
        (Some(_), Some(_), _) => bad("both file and url: ambiguous".into()),
        (Some(file), None, None) => Ok(SourceSpec::File { path: PathBuf::from(file), format }),
        (None, Some(u), None) => {
            let url = url(KIND, "credential_source.url", &u)?;
            let mut headers = Vec::new();
            for (name, value) in raw.headers.unwrap_or_default() {
                let valid = reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
                    && reqwest::header::HeaderValue::from_str(value.expose()).is_ok();
                if !valid {
                    return bad(format!("headers: {:?} is not a valid header", short(&name)));
                }
                headers.push((name, value));
            }
            Ok(SourceSpec::Url { url, headers, format })
        }
        (None, None, Some(exe)) => executable(exe, allow_executables),
        (Some(_), None, Some(_)) | (None, Some(_), Some(_)) => {
            bad("an executable with a file or url: ambiguous".into())
        }
        (None, None, None) => bad("no file, url, executable or environment_id".into()),
    }
}

fn format(raw: Option<RawFormat>) -> Result<Format, Refusal> {
    let Some(raw) = raw else { return Ok(Format::Text) };
    match (raw.kind.as_deref().unwrap_or("text"), raw.subject_token_field_name) {
        ("text", _) => Ok(Format::Text),
        ("json", Some(field)) if !field.is_empty() => Ok(Format::Json { field }),
        ("json", _) => refuse("external_account", "credential_source.format: json needs subject_token_field_name"),
        (other, _) => {
            refuse("external_account", format!("credential_source.format: type {:?} is not text or json", short(other)))
        }
    }
}

fn executable(raw: RawExecutable, allow: bool) -> Result<SourceSpec, Refusal> {
    const KIND: &str = "external_account";
    if !allow {
        return refuse(
            KIND,
            "executable-sourced credentials need GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1 in the daemon's environment",
        );
    }
    let argv: Vec<String> = raw.command.split_whitespace().map(str::to_owned).collect();
    if !argv.first().is_some_and(|p| p.starts_with('/')) {
        return refuse(KIND, "credential_source.executable.command must start with an absolute path");
    }
    let millis = raw.timeout_millis.unwrap_or(30_000);
    if !(5_000..=120_000).contains(&millis) {
        return refuse(KIND, format!("credential_source.executable.timeout_millis {millis} is outside 5000-120000"));
    }
    Ok(SourceSpec::Executable {
        argv,
        timeout: Duration::from_millis(millis),
        output_file: raw.output_file.filter(|f| !f.is_empty()).map(PathBuf::from),
    })
}

fn aws(
    region_url: Option<String>,
    credentials_url: Option<String>,
    verification_url: Option<String>,
    imdsv2_url: Option<String>,
) -> Result<SourceSpec, Refusal> {
    const KIND: &str = "external_account";
    let opt =
        |field: &str, v: Option<String>| v.map(|v| url(KIND, &format!("credential_source.{field}"), &v)).transpose();
    let Some(verification_url) = verification_url else {
        return refuse(KIND, "credential_source: AWS needs regional_cred_verification_url");
    };
    // The URL is signed, not called; Google's STS replays it to AWS, over HTTPS only.
    match Url::parse(&verification_url.replace("{region}", "us-east-1")) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => {}
        _ => return refuse(KIND, "credential_source.regional_cred_verification_url is not an https URL"),
    }
    Ok(SourceSpec::Aws {
        region_url: opt("region_url", region_url)?,
        credentials_url: opt("url", credentials_url)?,
        verification_url,
        imdsv2_url: opt("imdsv2_session_token_url", imdsv2_url)?,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const KEY: &str = include_str!("../../../tests/fixtures/test-only-service-account-key.pem");

    fn ok(v: Value) -> Parsed {
        parse(&v.to_string(), true).unwrap_or_else(|r| panic!("{v}: refused: {r:?}"))
    }

    fn refused(v: Value, allow_executables: bool) -> Refusal {
        match parse(&v.to_string(), allow_executables) {
            Ok(p) => panic!("{v}: accepted as {}", p.kind),
            Err(r) => r,
        }
    }

    fn user() -> Value {
        json!({"type": "authorized_user", "client_id": "c.apps.googleusercontent.com", "client_secret": "CSECRET",
               "refresh_token": "RTOKEN", "account": "", "universe_domain": "googleapis.com", "quota_project_id": "bill"})
    }

    fn wif(source: Value) -> Value {
        json!({"type": "external_account",
               "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/pool/providers/prov",
               "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
               "token_url": "https://sts.googleapis.com/v1/token",
               "credential_source": source})
    }

    #[test]
    fn every_type_adc_accepts_is_read() {
        let sa =
            ok(json!({"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": KEY,
                           "private_key_id": "k1", "token_uri": "https://oauth2.googleapis.com/token"}));
        assert!(
            matches!(&sa.spec, Spec::ServiceAccount(s) if s.email == "a@p.iam.gserviceaccount.com" && s.key_id.as_deref() == Some("k1"))
        );
        let u = ok(user());
        assert_eq!((u.kind, u.quota_project.as_deref(), u.holds_secret), ("authorized_user", Some("bill"), true));
        assert!(
            matches!(&u.spec, Spec::AuthorizedUser(u) if u.account.is_none() && u.refresh_token.expose() == "RTOKEN")
        );

        // Exactly what `gcloud auth application-default login --impersonate-service-account=HOP,TARGET` writes.
        let gcloud = json!({
            "delegates": ["hop@p.iam.gserviceaccount.com"],
            "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/auditor@host.iam.gserviceaccount.com:generateAccessToken",
            "source_credentials": {"account": "", "client_id": "c.apps.googleusercontent.com", "client_secret": "CSECRET",
                                   "refresh_token": "RTOKEN", "type": "authorized_user", "universe_domain": "googleapis.com"},
            "type": "impersonated_service_account"});
        let i = ok(gcloud);
        let Spec::Impersonated(i) = &i.spec else { panic!("not impersonated") };
        assert_eq!(i.target, "auditor@host.iam.gserviceaccount.com");
        assert_eq!(i.delegates, vec!["projects/-/serviceAccounts/hop@p.iam.gserviceaccount.com"]);
        assert_eq!(i.source.kind, "authorized_user");

        let url = ok(wif(json!({"url": "http://169.254.169.254/token?x=1", "headers": {"Metadata": "True"},
                                "format": {"type": "json", "subject_token_field_name": "access_token"}})));
        let Spec::External(e) = &url.spec else { panic!() };
        assert!(
            matches!(&e.source, SourceSpec::Url { format: Format::Json { field }, headers, .. } if field == "access_token" && headers.len() == 1)
        );
        assert!(!url.holds_secret);
        let file = ok(wif(json!({"file": "/var/run/token"})));
        assert!(
            matches!(&file.spec, Spec::External(e) if matches!(&e.source, SourceSpec::File { format: Format::Text, .. }))
        );
        let exe = ok(wif(json!({"executable": {"command": "/usr/bin/tok --a b", "output_file": "/tmp/o.json"}})));
        assert!(matches!(&exe.spec, Spec::External(e) if matches!(&e.source,
            SourceSpec::Executable { argv, timeout, .. } if argv.len() == 3 && *timeout == Duration::from_secs(30))));
        let mut imp = wif(
            json!({"environment_id": "aws1", "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                                  "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                                  "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
        );
        imp["service_account_impersonation_url"] = json!(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/wif@p.iam.gserviceaccount.com:generateAccessToken"
        );
        imp["service_account_impersonation"] = json!({"token_lifetime_seconds": 2800});
        let aws = ok(imp);
        let Spec::External(e) = &aws.spec else { panic!() };
        let i = e.impersonation.as_ref().unwrap();
        assert_eq!((i.email.as_str(), i.lifetime), ("wif@p.iam.gserviceaccount.com", Duration::from_secs(2800)));
        assert!(matches!(e.source, SourceSpec::Aws { .. }));
    }

    #[test]
    fn what_cannot_be_used_is_refused_with_its_type_and_reason() {
        let mut wf = wif(json!({"file": "/t"}));
        wf["workforce_pool_user_project"] = json!("p");
        let mut nested = user();
        nested["type"] = json!("impersonated_service_account");
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!([1]), "(unreadable)", "not a JSON object"),
            (json!({}), "(missing)", "no \"type\""),
            (json!({"type": "gdch_service_account"}), "gdch_service_account", "not supported"),
            (json!({"type": "external_account_authorized_user"}), "external_account_authorized_user", "not supported"),
            (json!({"type": "magic"}), "\"magic\"", "not a credential type"),
            (
                json!({"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com"}),
                "service_account",
                "missing field `private_key`",
            ),
            (
                json!({"type": "service_account", "client_email": "a@p.iam.gserviceaccount.com", "private_key": "-----BEGIN RSA PRIVATE KEY-----\nSECRET\n-----END RSA PRIVATE KEY-----\n"}),
                "service_account",
                "not a usable service-account key",
            ),
            (json!({"type": "authorized_user", "client_id": "c"}), "authorized_user", "missing field `client_secret`"),
            (
                {
                    let mut u = user();
                    u["universe_domain"] = json!("example.com");
                    u
                },
                "authorized_user",
                "universe_domain",
            ),
            (
                {
                    let mut u = user();
                    u["quota_project_id"] = json!("Bad Project");
                    u
                },
                "authorized_user",
                "not a project ID",
            ),
            (
                json!({"type": "impersonated_service_account", "service_account_impersonation_url": "https://x/y", "source_credentials": user()}),
                "impersonated_service_account",
                "service_account_impersonation_url",
            ),
            (
                json!({"type": "impersonated_service_account",
                    "service_account_impersonation_url": "https://i/v1/projects/-/serviceAccounts/a@p.iam.gserviceaccount.com:generateAccessToken",
                    "source_credentials": nested}),
                "impersonated_service_account",
                "source_credentials of type \"impersonated_service_account\" is not supported",
            ),
            (
                json!({"type": "impersonated_service_account",
                    "service_account_impersonation_url": "https://i/v1/projects/-/serviceAccounts/a@p.iam.gserviceaccount.com:generateAccessToken",
                    "source_credentials": {"type": "authorized_user"}}),
                "impersonated_service_account",
                "source_credentials (type authorized_user): missing field",
            ),
            (wif(json!({"certificate": {"certificate_config_location": "/x"}})), "external_account", "X.509"),
            (
                wif(json!({"environment_id": "aws2", "regional_cred_verification_url": "https://sts"})),
                "external_account",
                "aws version 2",
            ),
            (wif(json!({"environment_id": "azure1"})), "external_account", "environment_id"),
            (wif(json!({"environment_id": "aws1"})), "external_account", "regional_cred_verification_url"),
            (wif(json!({"file": "/a", "url": "https://b"})), "external_account", "ambiguous"),
            (wif(json!({"file": "/a", "format": {"type": "json"}})), "external_account", "subject_token_field_name"),
            (wif(json!({"file": "/a", "format": {"type": "xml"}})), "external_account", "not text or json"),
            (wif(json!({"executable": {"command": "tok"}})), "external_account", "absolute path"),
            (
                wif(json!({"executable": {"command": "/tok", "timeout_millis": 1000}})),
                "external_account",
                "outside 5000-120000",
            ),
            (wif(json!({})), "external_account", "no file, url, executable"),
            (wf, "external_account", "workforce_pool_user_project"),
            (
                {
                    let mut w = wif(json!({"file": "/t"}));
                    w["service_account_impersonation"] = json!({"token_lifetime_seconds": 100});
                    w
                },
                "external_account",
                "token_lifetime_seconds 100",
            ),
            (
                {
                    let mut w = wif(json!({"file": "/t"}));
                    w.as_object_mut().unwrap().remove("token_url");
                    w
                },
                "external_account",
                "token_url",
            ),
        ];
        for (value, kind, needle) in cases {
            let r = refused(value.clone(), true);
            assert_eq!(r.kind, kind, "{value}: {r:?}");
            assert!(r.problem.contains(needle), "{value}: {r:?}");
            assert!(!r.problem.contains("SECRET") && !r.problem.contains('\n'), "{r:?}");
        }
        let r = refused(wif(json!({"executable": {"command": "/usr/bin/tok"}})), false);
        assert!(r.problem.contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"), "{r:?}");
        let r = parse("{\"type\": \"authorized_user\", \"refresh_token\": \"SECRET", true).err().unwrap();
        assert_eq!(r.kind, "(unreadable)");
        for empty in ["", "\n"] {
            let r = parse(empty, true).err().unwrap();
            assert_eq!(r.kind, "(empty)");
            assert!(r.problem.contains("credentials.json is not installed"), "{r:?}");
        }
        let r = refused(
            json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": {"SECRET": 1}}),
            true,
        );
        assert!(!r.problem.contains("SECRET"), "{r:?}");
        let r = refused(wif(json!("SECRET")), true);
        assert!(!r.problem.contains("SECRET"), "{r:?}");
    }

    #[test]
    fn service_account_names_are_emails_or_ids_in_the_dash_project() {
        assert_eq!(service_account_name("a@p.iam.gserviceaccount.com").unwrap(), "a@p.iam.gserviceaccount.com");
        assert_eq!(
            service_account_name("projects/-/serviceAccounts/a@p.iam.gserviceaccount.com").unwrap(),
            "a@p.iam.gserviceaccount.com"
        );
        assert_eq!(service_account_name("123456789012345678901").unwrap(), "123456789012345678901");
        for bad in [
            "",
            "a",
            "a@b",
            "a@b.c/../x",
            "projects/p/serviceAccounts/a@b.c",
            "a@b@c.d",
            "a b@c.d",
            "a@b.c:generateAccessToken",
        ] {
            assert!(service_account_name(bad).is_err(), "{bad}");
        }
    }
}
