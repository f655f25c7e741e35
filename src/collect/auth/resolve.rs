//! Which credentials the auditor uses, decided at start without network I/O, in the order of
//! Application Default Credentials (AIP-4110):
//!
//! 1. `gcp.credentials_file`;
//! 2. `GOOGLE_APPLICATION_CREDENTIALS` (set but empty counts as unset, and is reported);
//! 3. gcloud's ADC file, `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
//!    `$HOME/.config/gcloud/…` — when it exists it must be usable: never skipped;
//! 4. the metadata server (`GCE_METADATA_HOST`, else 169.254.169.254).
//!
//! gcp_auth's last resort, running `gcloud auth print-access-token`, is not ADC and is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{self, Parsed};
use super::metadata::{DEFAULT_HOST, Metadata};
use crate::config::Gcp;

/// The environment variables credential resolution reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env(BTreeMap<&'static str, String>);

impl Env {
    const NAMES: [&'static str; 6] = [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "CLOUDSDK_CONFIG",
        "HOME",
        "GCE_METADATA_HOST",
        "GOOGLE_CLOUD_QUOTA_PROJECT",
        "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
    ];

    pub fn from_process() -> Env {
        Env(Self::NAMES.iter().filter_map(|n| std::env::var(n).ok().map(|v| (*n, v))).collect())
    }

    #[cfg(test)]
    pub fn with(pairs: &[(&'static str, &str)]) -> Env {
        Env(pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    /// The value, unless unset or empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    fn is_set_empty(&self, name: &str) -> bool {
        self.0.get(name).is_some_and(|v| v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    ConfigFile,
    EnvVar,
    /// gcloud's ADC file, found through this variable (CLOUDSDK_CONFIG or HOME).
    Gcloud(&'static str),
}

impl Origin {
    pub fn label(&self) -> String {
        match self {
            Origin::ConfigFile => "gcp.credentials_file".into(),
            Origin::EnvVar => "GOOGLE_APPLICATION_CREDENTIALS".into(),
            Origin::Gcloud(var) => format!("gcloud's ADC file, found through {var}"),
        }
    }
}

pub enum Credential {
    File { path: PathBuf, origin: Origin, parsed: Parsed },
    Metadata { metadata: Metadata, from_env: bool, adc_file: Option<PathBuf> },
}

pub struct Plan {
    pub credential: Credential,
    /// `gcp.impersonate_service_account` and `gcp.delegates` (full names), on top of the credential.
    pub impersonate: Option<(String, Vec<String>)>,
    /// The project and where it came from.
    pub quota_project: Option<(String, &'static str)>,
    /// Things check-config should say (an ignored setting, say).
    pub notes: Vec<String>,
}

/// Credentials files are small; anything bigger is not one.
const MAX_FILE_BYTES: u64 = 1 << 20;

pub fn plan(gcp: &Gcp, env: &Env) -> Result<Plan, String> {
    let allow_executables = env.get("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES") == Some("1");
    let load =
        |path: &Path, origin: Origin| load(path, origin, gcp.allow_world_readable_credentials, allow_executables);
    let mut notes = Vec::new();
    if gcp.credentials_file.is_none() && env.is_set_empty("GOOGLE_APPLICATION_CREDENTIALS") {
        notes.push("GOOGLE_APPLICATION_CREDENTIALS is set but empty: ignored".to_owned());
    }
    let gcloud_file = gcloud_file(env);
    let credential = if let Some(path) = &gcp.credentials_file {
        load(path, Origin::ConfigFile)?
    } else if let Some(path) = env.get("GOOGLE_APPLICATION_CREDENTIALS") {
        load(Path::new(path), Origin::EnvVar)?
    } else if let Some((path, var)) = gcloud_file.as_ref().filter(|(p, _)| std::fs::symlink_metadata(p).is_ok()) {
        load(path, Origin::Gcloud(var))?
    } else {
        let host = env.get("GCE_METADATA_HOST");
        let metadata = Metadata::new(host.unwrap_or(DEFAULT_HOST))?;
        Credential::Metadata { metadata, from_env: host.is_some(), adc_file: gcloud_file.map(|(p, _)| p) }
    };
    let file_quota = match &credential {
        Credential::File { parsed, .. } => parsed.quota_project.clone(),
        Credential::Metadata { .. } => None,
    };
    let quota_project = match (&gcp.quota_project, env.get("GOOGLE_CLOUD_QUOTA_PROJECT"), file_quota) {
        (Some(q), _, _) => Some((q.clone(), "gcp.quota_project")),
        (None, Some(q), _) if !file::is_project_id(q) => {
            return Err(format!("GOOGLE_CLOUD_QUOTA_PROJECT {q:?} is not a project ID"));
        }
        (None, Some(q), _) => Some((q.to_owned(), "GOOGLE_CLOUD_QUOTA_PROJECT")),
        (None, None, Some(q)) => Some((q, "the credentials file's quota_project_id")),
        (None, None, None) => None,
    };
    if let Credential::File { parsed: Parsed { spec: file::Spec::AuthorizedUser(u), .. }, .. } = &credential
        && let Some(uri) = u.token_uri.as_deref().filter(|u| *u != file::DEFAULT_TOKEN_URI)
    {
        notes.push(format!(
            "the file's token_uri {uri} is ignored (as Google's libraries do); gcp.endpoints.oauth2 is used"
        ));
    }
    let impersonate = gcp.impersonate_service_account.clone().map(|sa| (sa, gcp.delegates.clone()));
    Ok(Plan { credential, impersonate, quota_project, notes })
}

/// gcloud's ADC file and the variable that located it.
fn gcloud_file(env: &Env) -> Option<(PathBuf, &'static str)> {
    let name = "application_default_credentials.json";
    if let Some(dir) = env.get("CLOUDSDK_CONFIG") {
        return Some((Path::new(dir).join(name), "CLOUDSDK_CONFIG"));
    }
    env.get("HOME").map(|home| (Path::new(home).join(".config/gcloud").join(name), "HOME"))
}

fn load(
    path: &Path,
    origin: Origin,
    allow_world_readable: bool,
    allow_executables: bool,
) -> Result<Credential, String> {
    use std::os::unix::fs::PermissionsExt;
    let at = format!("credentials file {} ({})", path.display(), origin.label());
    let meta = std::fs::metadata(path).map_err(|e| format!("{at}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("{at}: not a regular file"));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(format!("{at}: larger than {} KiB; not a credentials file", MAX_FILE_BYTES >> 10));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{at}: {e}"))?;
    let parsed = file::parse(&text, allow_executables);
    let mode = meta.permissions().mode();
    // A file that cannot be read as a credential might hold anything: treated as secret.
    let (kind, secret) = match &parsed {
        Ok(p) => (p.kind.to_owned(), p.holds_secret),
        Err(r) => (r.kind.clone(), true),
    };
    if mode & 0o004 != 0 && secret && !allow_world_readable {
        return Err(format!(
            "{at}: type {kind}: the file is readable by every user (mode {:o}) and holds a secret: chmod o-r it, or set gcp.allow_world_readable_credentials = true",
            mode & 0o777
        ));
    }
    match parsed {
        Ok(parsed) => Ok(Credential::File { path: path.to_owned(), origin, parsed }),
        Err(r) => Err(format!("{at}: type {}: {}", r.kind, r.problem)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::config::Config;

    fn gcp(extra: &str) -> Gcp {
        let text = format!("[scope]\nprojects = [\"p\"]\n[gcp]\n{extra}\n");
        Config::parse(&text, Path::new("/etc/b/config.toml")).unwrap().gcp
    }

    fn write(dir: &Path, name: &str, value: serde_json::Value, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn user(quota: Option<&str>) -> serde_json::Value {
        let mut v = serde_json::json!({"type": "authorized_user", "client_id": "c", "client_secret": "s", "refresh_token": "r"});
        if let Some(q) = quota {
            v["quota_project_id"] = serde_json::json!(q);
        }
        v
    }

    fn source(plan: &Plan) -> String {
        match &plan.credential {
            Credential::File { path, origin, parsed } => {
                format!("{} {} {}", parsed.kind, path.display(), origin.label())
            }
            Credential::Metadata { metadata, from_env, .. } => format!("metadata {} {from_env}", metadata.base()),
        }
    }

    #[test]
    fn adc_order_is_config_then_variable_then_gcloud_then_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let config_file = write(d, "config.json", user(None), 0o600);
        let env_file = write(d, "env.json", user(None), 0o600);
        std::fs::create_dir_all(d.join("sdk")).unwrap();
        std::fs::create_dir_all(d.join("home/.config/gcloud")).unwrap();
        let sdk = write(&d.join("sdk"), "application_default_credentials.json", user(None), 0o600);
        let home = write(&d.join("home/.config/gcloud"), "application_default_credentials.json", user(None), 0o600);
        let gac = env_file.to_str().unwrap();
        let (sdk_dir, home_dir) = (d.join("sdk"), d.join("home"));
        let (sdk_dir, home_dir) = (sdk_dir.to_str().unwrap(), home_dir.to_str().unwrap());
        let with_config = gcp(&format!("credentials_file = {:?}", config_file.to_str().unwrap()));
        let all =
            Env::with(&[("GOOGLE_APPLICATION_CREDENTIALS", gac), ("CLOUDSDK_CONFIG", sdk_dir), ("HOME", home_dir)]);
        let plan = |g: &Gcp, e: &Env| source(&super::plan(g, e).unwrap());
        assert_eq!(plan(&with_config, &all), format!("authorized_user {} gcp.credentials_file", config_file.display()));
        assert_eq!(plan(&gcp(""), &all), format!("authorized_user {gac} GOOGLE_APPLICATION_CREDENTIALS"));
        let no_gac =
            Env::with(&[("GOOGLE_APPLICATION_CREDENTIALS", ""), ("CLOUDSDK_CONFIG", sdk_dir), ("HOME", home_dir)]);
        assert_eq!(
            plan(&gcp(""), &no_gac),
            format!("authorized_user {} gcloud's ADC file, found through CLOUDSDK_CONFIG", sdk.display())
        );
        assert!(super::plan(&gcp(""), &no_gac).unwrap().notes[0].contains("set but empty"));
        let home_only = Env::with(&[("HOME", home_dir)]);
        assert_eq!(
            plan(&gcp(""), &home_only),
            format!("authorized_user {} gcloud's ADC file, found through HOME", home.display())
        );
        let empty_sdk = Env::with(&[("CLOUDSDK_CONFIG", d.to_str().unwrap()), ("HOME", home_dir)]);
        assert_eq!(
            plan(&gcp(""), &empty_sdk),
            "metadata http://169.254.169.254 false",
            "CLOUDSDK_CONFIG wins over HOME"
        );
        let host = Env::with(&[("GCE_METADATA_HOST", "127.0.0.1:9999")]);
        assert_eq!(plan(&gcp(""), &host), "metadata http://127.0.0.1:9999 true");
        assert!(super::plan(&gcp(""), &Env::with(&[("GCE_METADATA_HOST", "x/y")])).is_err());
    }

    #[test]
    fn a_present_but_unusable_file_is_refused_never_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let bad = serde_json::json!({"type": "gdch_service_account"});
        write(dir.path(), "application_default_credentials.json", bad, 0o600);
        let env = Env::with(&[("CLOUDSDK_CONFIG", dir.path().to_str().unwrap()), ("GCE_METADATA_HOST", "127.0.0.1:1")]);
        let err = super::plan(&gcp(""), &env).err().unwrap();
        assert_eq!(
            err,
            format!(
                "credentials file {}/application_default_credentials.json (gcloud's ADC file, found through CLOUDSDK_CONFIG): type gdch_service_account: this type is not supported by binauthz-auditor; use service_account, authorized_user, impersonated_service_account or external_account",
                dir.path().display()
            )
        );
        let missing = Env::with(&[("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/adc.json")]);
        let err = super::plan(&gcp(""), &missing).err().unwrap();
        assert!(err.starts_with("credentials file /nonexistent/adc.json (GOOGLE_APPLICATION_CREDENTIALS): "), "{err}");
    }

    #[test]
    fn a_world_readable_file_with_a_secret_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "u.json", user(None), 0o644);
        let env = Env::default();
        let text = format!("credentials_file = {:?}", path.to_str().unwrap());
        let err = super::plan(&gcp(&text), &env).err().unwrap();
        assert!(err.contains("type authorized_user: the file is readable by every user (mode 644)"), "{err}");
        assert!(super::plan(&gcp(&format!("{text}\nallow_world_readable_credentials = true")), &env).is_ok());
        // An external_account file holds no secret of its own (the subject token is elsewhere).
        let wif = serde_json::json!({"type": "external_account", "audience": "a", "subject_token_type": "t",
                                      "token_url": "https://sts.googleapis.com/v1/token", "credential_source": {"file": "/t"}});
        let path = write(dir.path(), "wif.json", wif, 0o644);
        assert!(super::plan(&gcp(&format!("credentials_file = {:?}", path.to_str().unwrap())), &env).is_ok());
    }

    #[test]
    fn the_quota_project_is_config_then_variable_then_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "u.json", user(Some("from-file")), 0o600);
        let file = format!("credentials_file = {:?}", path.to_str().unwrap());
        let quota = |extra: &str, env: &Env| super::plan(&gcp(&format!("{file}\n{extra}")), env).unwrap().quota_project;
        let var = Env::with(&[("GOOGLE_CLOUD_QUOTA_PROJECT", "from-env")]);
        assert_eq!(quota("quota_project = \"from-config\"", &var), Some(("from-config".into(), "gcp.quota_project")));
        assert_eq!(quota("", &var), Some(("from-env".into(), "GOOGLE_CLOUD_QUOTA_PROJECT")));
        assert_eq!(quota("", &Env::default()), Some(("from-file".into(), "the credentials file's quota_project_id")));
        let bad = Env::with(&[("GOOGLE_CLOUD_QUOTA_PROJECT", "no way")]);
        assert!(super::plan(&gcp(&file), &bad).err().unwrap().contains("GOOGLE_CLOUD_QUOTA_PROJECT"));
    }
}
