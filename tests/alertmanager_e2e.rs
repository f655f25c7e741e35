//! Direct pushes against the real Alertmanager (Debian's prometheus-alertmanager): two
//! replicas make one alert per violation, a restarted Alertmanager has its alerts back within
//! resend_interval without a new audit, and pushes go through TLS with client certificates.

pub mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::config::TestConfig;
use support::daemon::InProcess;
use support::fake_google::FakeGoogle;
use support::fake_google::world::World;
use support::monitoring::{eventually, spawn, start_alertmanager};
use support::pki::{https_client, make_pki};
use support::resources::*;
use support::run::{cycles, free_port, http_client, run_cli, sample};

const REGION: &str = "us-central1";

fn seed() -> World {
    let mut world = World::default();
    let p = world.project("shop");
    p.policy = Some(policy_exempting_functions("shop", REGION));
    p.services = vec![
        service("shop", REGION, "web"),
        set(service("shop", REGION, "open"), "/binaryAuthorization", Value::Null),
        set(service("shop", REGION, "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-9")),
    ];
    p.functions = vec![function("shop", "europe-west1", "far")];
    // A project that never set a policy: ALWAYS_ALLOW.
    world.project("plain").services = vec![service("plain", REGION, "site")];
    world
}

/// (alertname, identifying label, value) of every alert `seed` calls for.
const EXPECTED: [(&str, &str, &str); 5] = [
    ("BinauthzWorkloadBinauthzDisabled", "name", "open"),
    ("BinauthzWorkloadBreakglass", "name", "glass"),
    ("BinauthzWorkloadAllowlistMissing", "name", "far"),
    ("BinauthzAllowlistEntryMissing", "location", "europe-west1"),
    ("BinauthzPolicyAlwaysAllow", "project", "plain"),
];

/// A replica: in-process, auditing once at start, pushing to `alertmanager` every second.
fn replica_config(dir: &Path, fake: &FakeGoogle, alertmanager: &str, external_url: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    TestConfig::gcp(dir, fake, &["plain", "shop"])
        .set("server.listen", "127.0.0.1:0")
        .set("schedule.cron", "0 0 1 1 *")
        .set("alertmanager.urls", vec![toml::Value::from(alertmanager)])
        .set("alertmanager.resend_interval", "1s")
        .set("alertmanager.timeout", "2s")
        .set("alertmanager.external_url", external_url)
        .set("alertmanager.extra_labels.cluster", "eu-1")
        .write(&dir.join("config.toml"))
}

/// Every alert in every group of Alertmanager's API (`/api/v2/alerts/groups`).
async fn grouped_alerts(base: &str, client: &reqwest::Client) -> Option<Vec<Value>> {
    let groups: Value = client.get(format!("{base}/api/v2/alerts/groups")).send().await.ok()?.json().await.ok()?;
    Some(groups.as_array()?.iter().flat_map(|g| g["alerts"].as_array().cloned().unwrap_or_default()).collect())
}

fn count(alerts: &[Value], (alertname, label, value): (&str, &str, &str)) -> usize {
    alerts.iter().filter(|a| a["labels"]["alertname"] == alertname && a["labels"][label] == value).count()
}

async fn ready(base: &str, client: &reqwest::Client) {
    eventually("Alertmanager ready", Duration::from_secs(30), async || {
        client.get(format!("{base}/-/ready")).send().await.ok()?.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_make_one_alert_per_violation_and_a_restarted_alertmanager_gets_them_back() {
    let fake = FakeGoogle::start(seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let alertmanager = start_alertmanager(dir.path(), "am", port);
    let http = http_client();
    ready(&base, &http).await;
    let a =
        InProcess::start(&replica_config(&dir.path().join("a"), &fake, &base, "https://auditor-a.example.com")).await;
    let b =
        InProcess::start(&replica_config(&dir.path().join("b"), &fake, &base, "https://auditor-b.example.com")).await;
    a.wait_for_cycles(1).await;
    b.wait_for_cycles(1).await;

    let alerts = eventually("every expected alert", Duration::from_secs(30), async || {
        let alerts = grouped_alerts(&base, &http).await?;
        EXPECTED.iter().all(|e| count(&alerts, *e) > 0).then_some(alerts)
    })
    .await;
    for expected in EXPECTED {
        assert_eq!(count(&alerts, expected), 1, "{expected:?}: one alert entry from two replicas:\n{alerts:#?}");
    }
    assert_eq!(alerts.len(), EXPECTED.len(), "nothing else, nothing twice:\n{alerts:#?}");
    for alert in &alerts {
        assert_eq!(alert["labels"]["cluster"], "eu-1", "extra_labels");
        assert!(alert["labels"].get("instance").is_none(), "no replica-specific label: {alert}");
        let generator = alert["generatorURL"].as_str().unwrap();
        assert!(generator.starts_with("https://auditor-") && generator.ends_with(".example.com/report"), "{generator}");
    }
    let open = alerts.iter().find(|a| a["labels"]["name"] == "open").unwrap();
    assert_eq!(open["labels"]["severity"], "critical");
    assert!(open["annotations"]["remediation"].as_str().unwrap().contains("--binary-authorization default"));
    // Both replicas push (one replica's push is enough for the alerts above to show, and a
    // push is counted once Alertmanager has answered it).
    let pushed = format!("binauthz_alertmanager_notifications_total{{alertmanager=\"{base}\",result=\"success\"}}");
    for replica in [&a, &b] {
        eventually("both replicas' pushes counted", Duration::from_secs(10), async || {
            (sample(&replica.metrics().await, &pushed).unwrap_or(0.0) >= 1.0).then_some(())
        })
        .await;
    }

    // Alertmanager keeps alerts in memory only: restarted, it has none until they are sent
    // again, which resend_interval (1 s) does without waiting for the next audit.
    drop(alertmanager);
    let _alertmanager = start_alertmanager(dir.path(), "am", port);
    ready(&base, &http).await;
    let restarted = Instant::now();
    eventually("the alerts back after the restart", Duration::from_secs(10), async || {
        let alerts = grouped_alerts(&base, &http).await?;
        EXPECTED.iter().all(|e| count(&alerts, *e) == 1).then_some(())
    })
    .await;
    let back = restarted.elapsed();
    assert!(back < Duration::from_secs(4), "back {back:?} after the restart, resend_interval 1s");
    assert_eq!(cycles(&a.metrics().await), 1, "no audit ran meanwhile: resends did it");
    assert_eq!(cycles(&b.metrics().await), 1);

    // Fixed: resolved by both replicas' next cycle, still one entry while it lasts.
    fake.estate(|e| e.project("shop").services[1] = service("shop", REGION, "open"));
    a.tick_until(2).await;
    b.tick_until(2).await;
    eventually("the fixed violation resolved", Duration::from_secs(10), async || {
        let alerts = grouped_alerts(&base, &http).await?;
        (count(&alerts, EXPECTED[0]) == 0 && count(&alerts, EXPECTED[1]) == 1).then_some(())
    })
    .await;
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

/// An Alertmanager behind exporter-toolkit's web config, requiring client certificates.
fn start_tls_alertmanager(dir: &Path, port: u16) -> support::monitoring::Proc {
    std::fs::write(
        dir.join("am-web.yml"),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    )
    .unwrap();
    std::fs::write(dir.join("am.yml"), "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n").unwrap();
    spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("am.yml").display()),
            format!("--web.config.file={}", dir.join("am-web.yml").display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--cluster.listen-address=".into(),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_reach_an_alertmanager_that_requires_client_certificates() {
    let fake = FakeGoogle::start(seed()).await;
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let _alertmanager = start_tls_alertmanager(dir.path(), port);
    let reader = https_client(&pki, true);
    ready(&base, &reader).await;

    let with_cert = TestConfig::gcp(dir.path(), &fake, &["plain", "shop"])
        .set("server.listen", "127.0.0.1:0")
        .set("schedule.cron", "0 0 1 1 *")
        .set("alertmanager.urls", vec![toml::Value::from(base.as_str())])
        .set("alertmanager.tls_ca_file", "ca.crt")
        .set("alertmanager.tls_cert_file", "client.crt")
        .set("alertmanager.tls_key_file", "client.key");
    let config = with_cert.clone().write(&dir.path().join("config.toml"));
    let daemon = InProcess::start(&config).await;
    eventually("pushed alerts over mutual TLS", Duration::from_secs(30), async || {
        let alerts = grouped_alerts(&base, &reader).await?;
        (count(&alerts, EXPECTED[0]) == 1).then_some(())
    })
    .await;
    daemon.shutdown().await.unwrap();

    // Without a client certificate the Alertmanager refuses the push: counted, logged.
    let no_cert = with_cert.clone().remove("alertmanager.tls_cert_file").remove("alertmanager.tls_key_file");
    let daemon = InProcess::start(&no_cert.write(&dir.path().join("config.toml"))).await;
    let failure = format!("binauthz_alertmanager_notifications_total{{alertmanager=\"{base}\",result=\"failure\"}}");
    eventually("a refused push counted", Duration::from_secs(30), async || {
        (sample(&daemon.metrics().await, &failure).unwrap_or(0.0) >= 1.0).then_some(())
    })
    .await;
    daemon.shutdown().await.unwrap();

    // A client key other users can read is refused before anything runs.
    let key = dir.path().join("client.key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out =
        run_cli(&["check-config", "--config", with_cert.write(&dir.path().join("config.toml")).to_str().unwrap()])
            .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("alertmanager.tls_key_file") && stderr.contains("readable by every user"), "{stderr}");
}
