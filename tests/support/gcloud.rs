//! Drives the real Google Cloud CLI against the fake Google, offline: every API endpoint
//! overridden to the fake, the fake as gcloud's HTTP proxy (regional hosts such as
//! `us-central1-127.0.0.1:PORT` reach it that way, gRPC through `CONNECT`), a token file, a
//! throwaway configuration directory, no prompts. gcloud ships with these machines but no
//! package registry provides it: tests that need it skip, with one line, where it is absent.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

use super::fake_google::FakeGoogle;
use super::run::BIN;

/// The token gcloud sends; the fake accepts it like one it issued.
pub const TOKEN: &str = "ya29.gcloud-under-test";

/// The APIs gcloud reaches in the commands the tests run (the last five in docs/deploy.md's
/// recipes: overridden, they get the fake's 404 at once instead of a refused tunnel that
/// gcloud retries for half a minute).
const APIS: [&str; 13] = [
    "RUN",
    "CLOUDFUNCTIONS",
    "BINARYAUTHORIZATION",
    "CLOUDASSET",
    "CLOUDRESOURCEMANAGER",
    "SERVICEUSAGE",
    "CLOUDBUILD",
    "IAM",
    "SECRETMANAGER",
    "ARTIFACTREGISTRY",
    "CLOUDSCHEDULER",
    "LOGGING",
    "CONTAINERANALYSIS",
];

pub struct Gcloud {
    sdk_root: PathBuf,
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    grpc: Option<Child>,
}

/// The gcloud to run: `$GCLOUD` (a path, or a name on PATH), else `gcloud`.
fn program() -> String {
    std::env::var("GCLOUD").unwrap_or_else(|_| "gcloud".into())
}

/// Says, on one line, that `test` did not run.
pub fn skip(test: &str, why: &str) {
    println!("SKIPPED {test}: {why}");
    eprintln!("SKIPPED {test}: {why}");
}

impl Gcloud {
    /// gcloud pointed at `fake`, or `None` (and one printed line) when gcloud is not installed.
    pub async fn against(fake: &FakeGoogle, test: &str) -> Option<Gcloud> {
        let sdk_root =
            match Command::new(program()).args(["info", "--format=value(installation.sdk_root)"]).output().await {
                Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
                _ => {
                    skip(test, "the Google Cloud CLI (gcloud) is not installed");
                    return None;
                }
            };
        fake.accept_token(TOKEN, "operator@example.com");
        let dir = tempfile::tempdir().unwrap();
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let port = fake.base_url.rsplit(':').next().unwrap().to_owned();
        let mut env: Vec<(String, String)> = APIS
            .iter()
            .map(|api| (format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"), format!("{}/", fake.base_url)))
            .collect();
        // Cloud KMS at its own host name, reached through the proxy: gcloud derives the id of
        // a KMS key from the endpoint (`//cloudkms.googleapis.com/v1/projects/...` at Google's,
        // `//127.0.0.1:PORT/v1/...` at the fake's address), as for an operator without overrides.
        env.push(("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS".into(), "http://cloudkms.googleapis.com/".into()));
        let auditor_dir = Path::new(BIN).parent().unwrap().display().to_string();
        env.extend(
            [
                ("CLOUDSDK_CONFIG", dir.path().join("config").display().to_string()),
                ("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", token_file.display().to_string()),
                ("CLOUDSDK_CORE_DISABLE_PROMPTS", "1".into()),
                ("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true".into()),
                ("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true".into()),
                ("CLOUDSDK_PROXY_TYPE", "http".into()),
                ("CLOUDSDK_PROXY_ADDRESS", "127.0.0.1".into()),
                ("CLOUDSDK_PROXY_PORT", port),
                // The printed fixes call the auditor by name, as an installed binary.
                ("PATH", format!("{auditor_dir}:{}", std::env::var("PATH").unwrap_or_default())),
            ]
            .map(|(k, v)| (k.to_owned(), v)),
        );
        Some(Gcloud { sdk_root, dir, env, grpc: None })
    }

    /// Starts the WorkerPools gRPC surface (`fake_run_grpc.py`, run by gcloud's own Python)
    /// and tunnels the fake's `CONNECT` to it. `false` (and one printed line) where gcloud's
    /// bundled Python is missing.
    pub async fn start_grpc(&mut self, fake: &FakeGoogle, test: &str) -> bool {
        let python = self.sdk_root.join("platform/bundledpythonunix/bin/python3");
        if !python.exists() {
            skip(test, "gcloud's bundled Python (for the worker-pool gRPC fake) is not installed");
            return false;
        }
        let (cert, key) = self.write_grpc_certificate();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake_run_grpc.py");
        let mut child = Command::new(python)
            .arg(script)
            .args([self.sdk_root.display().to_string(), fake.base_url.clone()])
            .args([&cert, &key])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start the gRPC fake");
        let mut first = String::new();
        let stdout = child.stdout.take().unwrap();
        tokio::io::BufReader::new(stdout).read_line(&mut first).await.unwrap();
        let port: u16 = first.trim().parse().unwrap_or_else(|_| panic!("the gRPC fake printed {first:?}"));
        fake.behaviour(|b| b.connect_to = Some(([127, 0, 0, 1], port).into()));
        self.env.push(("CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE".into(), cert.display().to_string()));
        self.grpc = Some(child);
        true
    }

    /// A server certificate for the regional hosts gcloud derives (`REGION-127.0.0.1`).
    fn write_grpc_certificate(&self) -> (PathBuf, PathBuf) {
        let names: Vec<String> = ["us-central1", "europe-west1", "us-east1"]
            .iter()
            .map(|r| format!("{r}-127.0.0.1"))
            .chain(["localhost".to_string(), "127.0.0.1".to_string()])
            .collect();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
        let (cert_path, key_path) = (self.dir.path().join("grpc.crt"), self.dir.path().join("grpc.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// `gcloud ARGS`: (exit code, stdout, stderr).
    pub async fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(program()).args(args).envs(self.env.iter().cloned()).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Pastes `script` into bash, as an operator would: (exit code, stdout, stderr).
    pub async fn paste(&self, script: &str) -> (i32, String, String) {
        let out = Command::new("bash")
            .args(["-c", script])
            .current_dir(self.dir.path())
            .envs(self.env.iter().cloned())
            .output()
            .await
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}
