//! Drives the real binary (`audit`, the daemon as a process) and reads what a daemon serves.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::{Child, Command};

use super::config::TestConfig;

pub const BIN: &str = env!("CARGO_BIN_EXE_binauthz-auditor");

pub async fn run_cli(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env("RUST_LOG", "warn").output().await.expect("run the binary")
}

/// `audit --format json`: (exit code, report, stderr).
pub async fn audit_json(config: &Path) -> (i32, Value, String) {
    let out = run_cli(&["audit", "--config", config.to_str().unwrap(), "--format", "json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("audit printed no JSON ({e}); stderr: {stderr}"));
    (out.status.code().expect("exited"), report, stderr)
}

/// The crate builds reqwest and rustls without a default crypto provider: a test's clients
/// need ring installed first (once per process; later calls do nothing).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client for tests.
pub fn http_client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// HTTP to a running daemon, in-process or not: scrapes, reports, and waiting for cycles.
pub struct Endpoint {
    /// `http://host:port`.
    pub url: String,
    http: reqwest::Client,
}

impl Endpoint {
    pub fn new(url: String) -> Endpoint {
        Endpoint { url, http: http_client() }
    }

    pub async fn get(&self, path: &str) -> Result<reqwest::Response, reqwest::Error> {
        self.http.get(format!("{}{path}", self.url)).timeout(Duration::from_secs(10)).send().await
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.expect("scrape").text().await.unwrap()
    }

    pub async fn report(&self) -> Value {
        self.get("/report").await.expect("report").json().await.unwrap()
    }

    /// Waits until `binauthz_audit_cycles_total` (all results but skipped) reaches `n`;
    /// returns that scrape.
    pub async fn wait_for_cycles(&self, n: u64) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let metrics = self.metrics().await;
            if cycles(&metrics) >= n {
                return metrics;
            }
            assert!(Instant::now() < deadline, "fewer than {n} cycles after 30s:\n{metrics}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The real binary running `run`.
pub struct Daemon {
    pub child: Child,
    endpoint: Endpoint,
}

/// A daemon is scraped like any endpoint.
impl std::ops::Deref for Daemon {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.endpoint
    }
}

impl Daemon {
    /// Starts `run --config` and waits until it answers /healthz.
    pub async fn start(config: &Path) -> Daemon {
        let mut command = Command::new(BIN);
        command.env("RUST_LOG", "info").stderr(Stdio::inherit());
        Daemon::spawn(command, config).await
    }

    /// `start` with exactly `env` as its environment, its log written to `log`.
    pub async fn start_with(config: &Path, env: &[(String, String)], log: &Path) -> Daemon {
        let mut command = Command::new(BIN);
        command.env_clear().envs(env.iter().cloned()).stderr(std::fs::File::create(log).unwrap());
        Daemon::spawn(command, config).await
    }

    /// `start` through `prefix` (e.g. `prlimit --nofile=256:256 --`, which execs the daemon,
    /// so the child's id stays the daemon's), its log written to `log` if given.
    pub async fn start_under(config: &Path, prefix: &[&str], log: Option<&Path>) -> Daemon {
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut command = Command::new(program);
                command.args(rest).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command.env("RUST_LOG", "info");
        match log {
            Some(path) => command.stderr(std::fs::File::create(path).unwrap()),
            None => command.stderr(Stdio::inherit()),
        };
        Daemon::spawn(command, config).await
    }

    /// `run --config CONFIG ARGS...` with `env` added, its log written to `log`, answering at
    /// `listen`: where the flags or the environment, not the file, say it listens.
    pub async fn start_at(config: &Path, args: &[&str], env: &[(&str, &str)], log: &Path, listen: &str) -> Daemon {
        let mut command = Command::new(BIN);
        command.env("RUST_LOG", "info").envs(env.iter().copied()).stderr(std::fs::File::create(log).unwrap());
        command.args(["run", "--config", config.to_str().unwrap()]).args(args);
        Daemon::spawn_at(command, listen).await
    }

    async fn spawn(mut command: Command, config: &Path) -> Daemon {
        command.args(["run", "--config", config.to_str().unwrap()]);
        let listen = TestConfig::load(config).get("server.listen").and_then(|v| v.as_str().map(str::to_owned));
        let listen = listen.expect("configs for the real binary set [server] listen to a port");
        Daemon::spawn_at(command, &listen).await
    }

    async fn spawn_at(mut command: Command, listen: &str) -> Daemon {
        let child = command.stdout(Stdio::null()).kill_on_drop(true).spawn().expect("start the daemon");
        let daemon = Daemon { child, endpoint: Endpoint::new(format!("http://{listen}")) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if daemon.get("/healthz").await.is_ok() {
                return daemon;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the daemon did not answer /healthz within 20s");
    }

    /// The daemon's resident set and its peak so far, in bytes (/proc/PID/status).
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id().expect("running"))).unwrap();
        let field = |name: &str| -> u64 {
            let line = status.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name} in {status}"));
            line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// How many file descriptors the daemon holds open.
    pub fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id().expect("running"))).unwrap().count()
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill").args(["-s", signal, &pid]).status().unwrap();
        assert!(status.success());
    }
}

/// Finished cycles in a scrape: `binauthz_audit_cycles_total` over every result but skipped.
pub fn cycles(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("binauthz_audit_cycles_total{") && !l.contains("skipped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// `promtool check metrics` must accept the exposition; a missing promtool is a failure.
pub fn promtool_check_metrics(text: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (apt-get install prometheus; scripts/test installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the first sample whose line starts with `series` (name and labels as rendered).
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// `name{label="value",...}` as the text format renders it (labels in the order given).
pub fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{name}{{{}}}", inner.join(","))
}
