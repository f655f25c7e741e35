//! The daemon as Prometheus and operators see it: the real binary against the fake Google.

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::fake_google::{FakeGoogle, Fault, World};
use support::resources::*;
use support::run::{Daemon, free_port, gcp_config, sample, series};

const REGION: &str = "us-central1";
const EVERY_SECOND: &str = "* * * * * *";

fn daemon_extra(port: u16, cron: &str) -> String {
    format!("[schedule]\ncron = \"{cron}\"\nrun_on_start = true\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n")
}

fn seed(world: &mut World, id: &str) {
    let p = world.project(id);
    p.policy = Some(policy_exempting_functions(id, REGION));
    p.services = vec![
        service(id, REGION, "web"),
        set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null),
        backing_service(id, REGION, "hook"),
    ];
    p.jobs = vec![job(id, REGION, "etl")];
    p.functions = vec![function(id, REGION, "hook"), function(id, "europe-west1", "far")];
}

fn resource_series(name: &str, project: &str, kind: &str, resource: &str) -> String {
    series(name, &[("project", project), ("location", REGION), ("kind", kind), ("name", resource)])
}

/// `promtool check metrics` must accept the exposition; a missing promtool is a failure.
fn promtool_check_metrics(text: &str) {
    let mut child = Command::new("promtool")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_every_workload_and_pass_promtool() {
    let mut world = World::default();
    seed(&mut world, "shop-prod");
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gcp_config(dir.path(), &fake, &["shop-prod"], "", &daemon_extra(free_port(), "0 0 * * *"));
    let daemon = Daemon::start(&config).await;

    let metrics = daemon.wait_for_cycles(1).await;

    let content_type = daemon.get("/metrics").await.unwrap().headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    promtool_check_metrics(&metrics);
    let p = "shop-prod";
    assert_eq!(sample(&metrics, &resource_series("binauthz_resource_compliant", p, "service", "web")), Some(1.0));
    assert_eq!(sample(&metrics, &resource_series("binauthz_resource_compliant", p, "service", "open")), Some(0.0));
    assert_eq!(sample(&metrics, &resource_series("binauthz_resource_compliant", p, "function", "hook")), Some(1.0));
    assert_eq!(sample(&metrics, &resource_series("binauthz_resource_compliant", p, "service", "hook")), None);
    let violation = series(
        "binauthz_resource_violation",
        &[
            ("project", p),
            ("location", REGION),
            ("kind", "service"),
            ("name", "open"),
            ("reason", "binauthz_disabled"),
            ("suppressed", "false"),
        ],
    );
    assert_eq!(sample(&metrics, &violation), Some(1.0), "{metrics}");
    let far_repo = format!("europe-west1-docker.pkg.dev/{p}/gcf-artifacts");
    let entry = series(
        "binauthz_policy_allowlist_entry_present",
        &[("project", p), ("location", "europe-west1"), ("repository", &far_repo)],
    );
    assert_eq!(sample(&metrics, &entry), Some(0.0));
    let info = series(
        "binauthz_policy_info",
        &[
            ("project", p),
            ("evaluation_mode", "REQUIRE_ATTESTATION"),
            ("enforcement_mode", "ENFORCED_BLOCK_AND_AUDIT_LOG"),
            ("global_policy_evaluation_mode", "ENABLE"),
        ],
    );
    assert_eq!(sample(&metrics, &info), Some(1.0));
    assert_eq!(sample(&metrics, &series("binauthz_project_up", &[("project", p)])), Some(1.0));
    assert!(
        sample(&metrics, &series("binauthz_project_last_success_timestamp_seconds", &[("project", p)])).unwrap()
            > 1.7e9
    );
    assert!(sample(&metrics, "binauthz_audit_last_success_timestamp_seconds").is_some());
    assert!(sample(&metrics, "binauthz_audit_duration_seconds").is_some());
    assert!(
        sample(&metrics, &series("binauthz_api_requests_total", &[("api", "run"), ("code", "200")])).unwrap() >= 1.0
    );
    assert_eq!(sample(&metrics, &series("binauthz_build_info", &[("version", env!("CARGO_PKG_VERSION"))])), Some(1.0));
    assert!(
        metrics.contains("# HELP binauthz_resource_compliant") && metrics.contains("Cached"),
        "HELP says results are cached"
    );

    let landing = daemon.get("/").await.unwrap().text().await.unwrap();
    assert!(landing.contains("href=\"metrics\"") && landing.contains("href=\"report\""));
    assert_eq!(daemon.get("/healthz").await.unwrap().status(), 200);
    let report = daemon.report().await;
    assert_eq!(report["complete"], true);
    assert_eq!(report["summary"]["non_compliant"], 2, "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_workload_loses_its_old_series_on_the_next_cycle() {
    let mut world = World::default();
    seed(&mut world, "shop-prod");
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gcp_config(dir.path(), &fake, &["shop-prod"], "", &daemon_extra(free_port(), EVERY_SECOND));
    let daemon = Daemon::start(&config).await;
    let open = resource_series("binauthz_resource_compliant", "shop-prod", "service", "open");
    let etl = resource_series("binauthz_resource_compliant", "shop-prod", "job", "etl");
    let before = daemon.wait_for_cycles(1).await;
    assert_eq!(sample(&before, &open), Some(0.0));
    assert!(before.contains("name=\"open\",reason=\"binauthz_disabled\""));

    fake.with(|w| {
        let p = w.project("shop-prod");
        p.services[1] = service("shop-prod", REGION, "open");
        p.jobs.clear();
    });
    let cycles_so_far = cycles(&before);
    let after = daemon.wait_for_cycles(cycles_so_far + 2).await;

    assert_eq!(sample(&after, &open), Some(1.0), "fixed workloads turn compliant");
    assert!(!after.contains("reason=\"binauthz_disabled\""), "the violation series is gone:\n{after}");
    assert_eq!(sample(&after, &etl), None, "a deleted job's series is gone");
}

fn cycles(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("binauthz_audit_cycles_total{") && !l.contains("skipped"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_project_keeps_its_last_known_series_and_goes_down() {
    let mut world = World::default();
    seed(&mut world, "healthy");
    seed(&mut world, "flaky");
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gcp_config(dir.path(), &fake, &["flaky", "healthy"], "", &daemon_extra(free_port(), EVERY_SECOND));
    let daemon = Daemon::start(&config).await;
    let first = daemon.wait_for_cycles(1).await;
    let flaky_success =
        sample(&first, &series("binauthz_project_last_success_timestamp_seconds", &[("project", "flaky")]));

    fake.with(|w| {
        w.faults.push(Fault::status(
            "/projects/flaky/locations/-/services",
            503,
            json!({"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}}),
        ));
        w.project("flaky").services.clear(); // were it seen, everything would vanish
        w.project("healthy").jobs.clear();
    });
    let after = daemon.wait_for_cycles(cycles(&first) + 2).await;

    assert_eq!(sample(&after, &series("binauthz_project_up", &[("project", "flaky")])), Some(0.0));
    assert_eq!(sample(&after, &series("binauthz_project_up", &[("project", "healthy")])), Some(1.0));
    assert_eq!(
        sample(&after, &resource_series("binauthz_resource_compliant", "flaky", "service", "open")),
        Some(0.0),
        "last-known series are kept"
    );
    assert_eq!(
        sample(&after, &series("binauthz_project_last_success_timestamp_seconds", &[("project", "flaky")])),
        flaky_success
    );
    assert_eq!(sample(&after, &resource_series("binauthz_resource_compliant", "healthy", "job", "etl")), None);
    assert!(sample(&after, &series("binauthz_api_requests_total", &[("api", "run"), ("code", "503")])).unwrap() >= 1.0);
    let report = daemon.report().await;
    assert_eq!(report["complete"], false);
    let flaky = report["projects"].as_array().unwrap().iter().find(|p| p["project"] == "flaky").unwrap().clone();
    assert!(flaky["error"].as_str().unwrap().contains("HTTP 503 UNAVAILABLE"), "{flaky}");
    promtool_check_metrics(&after);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_cycle_exits_zero_within_five_seconds() {
    let mut world = World::default();
    seed(&mut world, "slow");
    world.faults.push(Fault::delay("/policy", Duration::from_secs(60)));
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gcp_config(dir.path(), &fake, &["slow"], "", &daemon_extra(free_port(), "0 0 * * *"));
    let config_text =
        std::fs::read_to_string(&config).unwrap().replace("request_timeout = \"2s\"", "request_timeout = \"120s\"");
    std::fs::write(&config, config_text).unwrap();
    let mut daemon = Daemon::start(&config).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // the cycle is now waiting on the policy

    let started = Instant::now();
    daemon.signal("TERM");
    let status =
        tokio::time::timeout(Duration::from_secs(5), daemon.child.wait()).await.expect("exited within 5s").unwrap();

    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_config_and_keeps_the_old_one_after_a_bad_one() {
    let mut world = World::default();
    seed(&mut world, "first");
    seed(&mut world, "second");
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = gcp_config(dir.path(), &fake, &["first"], "", &daemon_extra(port, EVERY_SECOND));
    let good_text = std::fs::read_to_string(&config).unwrap();
    let daemon = Daemon::start(&config).await;
    daemon.wait_for_cycles(1).await;

    std::fs::write(&config, good_text.replace("[rules]", "").replace("[scope]", "[scope]\nbogus = 1")).unwrap();
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut metrics = daemon.metrics().await;
    while sample(&metrics, "binauthz_config_last_reload_successful") != Some(0.0) {
        assert!(Instant::now() < deadline, "the bad reload was not reported:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        metrics = daemon.metrics().await;
    }
    assert!(daemon.get("/healthz").await.is_ok(), "still serving");

    std::fs::write(&config, good_text.replace("projects = [\"first\"]", "projects = [\"first\", \"second\"]")).unwrap();
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let metrics = daemon.metrics().await;
        if sample(&metrics, "binauthz_config_last_reload_successful") == Some(1.0)
            && sample(&metrics, &series("binauthz_project_up", &[("project", "second")])) == Some(1.0)
        {
            break;
        }
        assert!(Instant::now() < deadline, "the good reload did not take effect:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_longer_than_the_schedule_interval_makes_the_next_one_skip() {
    let mut world = World::default();
    seed(&mut world, "slow");
    world.faults.push(Fault::delay("/policy", Duration::from_millis(2500)));
    let fake = FakeGoogle::start(world).await;
    let dir = tempfile::tempdir().unwrap();
    let config = gcp_config(dir.path(), &fake, &["slow"], "", &daemon_extra(free_port(), EVERY_SECOND));
    let config_text =
        std::fs::read_to_string(&config).unwrap().replace("request_timeout = \"2s\"", "request_timeout = \"10s\"");
    std::fs::write(&config, config_text).unwrap();
    let daemon = Daemon::start(&config).await;

    let metrics = daemon.wait_for_cycles(1).await;

    let skipped = sample(&metrics, &series("binauthz_audit_cycles_total", &[("result", "skipped")])).unwrap_or(0.0);
    assert!(skipped >= 1.0, "{metrics}");
    let most_at_once = fake.with(|w| w.max_in_flight.get("/v1/projects/slow/policy").copied());
    assert_eq!(most_at_once, Some(1), "never two cycles at once");
}

/// A config auditing the bundled demo snapshot, listening on a free port.
fn demo_config(dir: &std::path::Path, cron: &str) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let demo = std::fs::canonicalize("config/demo").unwrap();
    let path = dir.join("demo.toml");
    std::fs::write(&path, format!("[source]\nkind = \"snapshot\"\npath = {demo:?}\n\n{}", daemon_extra(port, cron)))
        .unwrap();
    (path, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_and_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = demo_config(dir.path(), "0 0 * * *");
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(10))).unwrap();

    let mut child = tokio::process::Command::new(support::run::BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while !(messages.iter().any(|m: &String| m.contains("READY=1"))
        && messages.iter().any(|m| m.contains("STATUS=last cycle success"))
        && messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        let n = socket.recv(&mut buf).expect("a notification within 10s");
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    let ready = messages.iter().position(|m| m.contains("READY=1")).unwrap();
    // READY comes after the listener is bound: the port answers by then.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(messages[..ready].iter().all(|m| !m.contains("STATUS=last cycle")), "READY precedes results");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_a_line_per_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = demo_config(dir.path(), "0 0 * * *");
    let child = tokio::process::Command::new(support::run::BIN)
        .args(["--log-format", "json", "run", "--config", config.to_str().unwrap()])
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pid = child.id().unwrap().to_string();
    Command::new("kill").args(["-s", "TERM", &pid]).status().unwrap();
    let out = child.wait_with_output().await.unwrap();
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<Value> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let cycle = lines.iter().find(|l| l["message"] == "audit cycle finished").expect("a cycle line");
    assert_eq!(cycle["resources"], 16);
    assert_eq!(cycle["non_compliant"], 8);
    assert!(cycle["duration_s"].is_number());
    assert!(lines.iter().any(|l| l["message"] == "stopping"));
}
