//! The real Prometheus and Alertmanager from the Debian packages, started for a test and
//! killed however it ends. Missing binaries fail the test: scripts/test installs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::run::http_client;

/// Kills the process (and so frees its port) however the test ends.
pub struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn spawn(program: &str, args: &[String]) -> Proc {
    let child =
        Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}); install it: apt-get install prometheus prometheus-alertmanager")
        });
    Proc(child)
}

/// An Alertmanager that groups fast (1 s) and sends nowhere: tests read its API.
pub fn start_alertmanager(dir: &Path, name: &str, port: u16) -> Proc {
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.path={}", dir.join(name).display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ],
    )
}

pub async fn get_json(url: &str) -> Option<Value> {
    http_client().get(url).timeout(Duration::from_secs(5)).send().await.ok()?.json().await.ok()
}

/// Polls `probe` every 250 ms until it gives a value, failing the test after `limit`.
pub async fn eventually<T>(what: &str, limit: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = probe().await {
            return t;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The active alerts of an Alertmanager, as its API returns them (JSON objects).
pub async fn active_alerts(port: u16) -> Option<Vec<Value>> {
    get_json(&format!("http://127.0.0.1:{port}/api/v2/alerts?active=true&silenced=false&inhibited=false"))
        .await?
        .as_array()
        .cloned()
}

pub fn has_alert(alerts: &[Value], alertname: &str, label: &str, value: &str) -> bool {
    alerts.iter().any(|a| a["labels"]["alertname"] == alertname && a["labels"][label] == value)
}
