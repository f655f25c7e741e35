//! The daemon as Prometheus and operators see it, against the fake Google: in-process (the
//! test sends the ticks, reloads and stops), plus a few runs of the real binary for what only
//! a process has (signals, systemd's socket, its log output).

pub mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use binauthz_auditor::daemon::Event;
use serde_json::{Value, json};
use support::config::TestConfig;
use support::fake_google::world::{Fault, Node, World};
use support::harness::Harness;
use support::resources::*;
use support::run::{Daemon, cycles, free_port, promtool_check_metrics, sample, series};

const REGION: &str = "us-central1";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_describe_every_workload_pass_promtool_and_come_gzipped_on_request() {
    let mut world = World::default();
    seed(&mut world, "shop-prod");
    let h = Harness::start(world).await;
    let daemon = h.daemon(&h.config(&["shop-prod"]).in_process(true)).await;

    let metrics = daemon.wait_for_cycles(1).await;

    let content_type = daemon.get("/metrics").await.unwrap().headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    promtool_check_metrics(&metrics);
    assert!(metrics.contains("process_resident_memory_bytes "), "process_* metrics:\n{metrics}");
    assert!(metrics.contains("process_open_fds "));

    // gzip, for clients that ask for it (Prometheus does), of the same bodies.
    let http = reqwest::Client::new();
    for (path, accept) in [("/metrics", "gzip"), ("/report", "deflate, gzip;q=0.8")] {
        let url = format!("{}{path}", daemon.url);
        let plain = http.get(&url).send().await.unwrap();
        assert_eq!(plain.headers().get("content-encoding"), None, "{path}: no Accept-Encoding, no gzip");
        assert_eq!(plain.headers()["vary"], "Accept-Encoding");
        let plain = plain.text().await.unwrap();
        let refused = http.get(&url).header("accept-encoding", "gzip;q=0, identity").send().await.unwrap();
        assert_eq!(refused.headers().get("content-encoding"), None, "{path}: gzip;q=0 refuses gzip");

        let zipped = http.get(&url).header("accept-encoding", accept).send().await.unwrap();
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(zipped.headers()["vary"], "Accept-Encoding");
        let length: usize = zipped.headers()["content-length"].to_str().unwrap().parse().unwrap();
        let bytes = zipped.bytes().await.unwrap();
        assert_eq!(bytes.len(), length);
        assert!(bytes.len() < plain.len(), "{path}: {} bytes gzipped, {} plain", bytes.len(), plain.len());
        let mut text = String::new();
        let mut decoder = flate2::bufread::GzDecoder::new(&bytes[..]);
        std::io::Read::read_to_string(&mut decoder, &mut text).expect("valid gzip");
        assert!(decoder.into_inner().is_empty(), "{path}: one gzip member");
        // The process's own gauges move between two requests; everything else is the same.
        let stable = |t: &str| t.lines().filter(|l| !l.starts_with("process_")).collect::<Vec<_>>().join("\n");
        assert_eq!(stable(&text), stable(&plain), "{path}");
    }
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
    use binauthz_auditor::build_info;
    let build =
        [("revision", build_info::REVISION), ("rustc", build_info::RUSTC_VERSION), ("version", build_info::VERSION)];
    assert_eq!(sample(&metrics, &series("binauthz_build_info", &build)), Some(1.0));
    assert_eq!(build_info::VERSION, env!("CARGO_PKG_VERSION"));
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
async fn resource_labels_and_per_project_counts_are_exported_as_configured() {
    let mut world = World::default();
    seed(&mut world, "shop-prod");
    let p = world.project("shop-prod");
    p.services[1] = set(p.services[1].clone(), "/labels", json!({"team": "pay-ments", "owner": "a\"b", "tier": "1"}));
    let h = Harness::start(world).await;
    let config = h.config(&["shop-prod"]).in_process(true);
    let daemon =
        h.daemon(&config.clone().set("metrics.resource_labels", vec![toml::Value::from("team"), "owner".into()])).await;
    let metrics = daemon.wait_for_cycles(1).await;
    promtool_check_metrics(&metrics);
    let open = r#"binauthz_resource_labels{project="shop-prod",location="us-central1",kind="service",name="open",label_owner="a\"b",label_team="pay-ments"} 1"#;
    assert!(metrics.lines().any(|l| l == open), "{metrics}");
    assert!(!metrics.contains("label_tier"), "only allow-listed keys");
    assert!(!metrics.contains("binauthz_project_resources"), "per-project counts only instead of per-workload series");
    daemon.shutdown().await.unwrap();

    // per_workload = false: per-project counts instead of per-workload series.
    let daemon = h.daemon(&config.set("metrics.per_workload", false)).await;
    let metrics = daemon.wait_for_cycles(1).await;
    promtool_check_metrics(&metrics);
    assert!(!metrics.contains("binauthz_resource_"), "no per-workload series:\n{metrics}");
    for expected in [
        series("binauthz_project_resources", &[("project", "shop-prod"), ("kind", "service"), ("status", "compliant")]),
        series(
            "binauthz_project_resources",
            &[("project", "shop-prod"), ("kind", "service"), ("status", "non_compliant")],
        ),
        series(
            "binauthz_project_violations",
            &[("project", "shop-prod"), ("kind", "service"), ("reason", "binauthz_disabled"), ("suppressed", "false")],
        ),
    ] {
        assert_eq!(sample(&metrics, &expected), Some(1.0), "{expected} in\n{metrics}");
    }
    assert_eq!(sample(&metrics, &series("binauthz_project_up", &[("project", "shop-prod")])), Some(1.0));
    // The report is per workload whatever /metrics shows.
    assert!(daemon.report().await["resources"].as_array().unwrap().iter().any(|r| r["name"] == "open"));
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_workload_loses_its_old_series_on_the_next_cycle() {
    let mut world = World::default();
    seed(&mut world, "shop-prod");
    let h = Harness::start(world).await;
    let daemon = h.daemon(&h.config(&["shop-prod"]).in_process(true)).await;
    let open = resource_series("binauthz_resource_compliant", "shop-prod", "service", "open");
    let etl = resource_series("binauthz_resource_compliant", "shop-prod", "job", "etl");
    let before = daemon.wait_for_cycles(1).await;
    assert_eq!(sample(&before, &open), Some(0.0));
    assert!(before.contains("name=\"open\",reason=\"binauthz_disabled\""));

    h.fake.estate(|e| {
        let p = e.project("shop-prod");
        p.services[1] = service("shop-prod", REGION, "open");
        p.jobs.clear();
    });
    let after = daemon.tick_until(cycles(&before) + 1).await;

    assert_eq!(sample(&after, &open), Some(1.0), "fixed workloads turn compliant");
    assert!(!after.contains("reason=\"binauthz_disabled\""), "the violation series is gone:\n{after}");
    assert_eq!(sample(&after, &etl), None, "a deleted job's series is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_project_keeps_its_last_known_series_and_goes_down() {
    let mut world = World::default();
    seed(&mut world, "healthy");
    seed(&mut world, "flaky");
    let h = Harness::start(world).await;
    let daemon = h.daemon(&h.config(&["flaky", "healthy"]).in_process(true)).await;
    let first = daemon.wait_for_cycles(1).await;
    let flaky_success =
        sample(&first, &series("binauthz_project_last_success_timestamp_seconds", &[("project", "flaky")]));

    h.fake.behaviour(|b| {
        b.faults.push(Fault::status(
            "/projects/flaky/locations/-/services",
            503,
            json!({"error": {"code": 503, "message": "unavailable", "status": "UNAVAILABLE"}}),
        ))
    });
    h.fake.estate(|e| {
        e.project("flaky").services.clear(); // were it seen, everything would vanish
        e.project("healthy").jobs.clear();
    });
    let after = daemon.tick_until(cycles(&first) + 1).await;

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

/// The real binary's part of a config: an audit at start, no other until the test is over,
/// on `port`.
fn as_binary(config: TestConfig, port: u16) -> TestConfig {
    config.in_process(true).set("server.listen", format!("127.0.0.1:{port}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_cycle_exits_zero_within_five_seconds() {
    let mut world = World::default();
    seed(&mut world, "slow");
    world.behaviour.faults.push(Fault::delay("/policy", Duration::from_secs(60)));
    let h = Harness::start(world).await;
    let config = as_binary(h.config(&["slow"]).set("gcp.request_timeout", "120s"), free_port());
    let mut daemon = Daemon::start(&h.write(&config, "config.toml")).await;
    // The cycle is now waiting on the policy: that request is in flight.
    h.fake.until_in_flight("/v1/projects/slow/policy").await;

    let started = Instant::now();
    daemon.signal("TERM");
    let status =
        tokio::time::timeout(Duration::from_secs(5), daemon.child.wait()).await.expect("exited within 5s").unwrap();

    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_search_results_are_reused_within_their_ttl() {
    let mut world = World::default();
    seed(&mut world, "found");
    world.estate.hierarchy.projects = vec![Node::active("found", "folders/9")];
    let h = Harness::start(world).await;
    let config = h
        .config(&[])
        .set("scope.project_query", "parent:folders/9")
        .set("scope.project_query_ttl", "1h")
        .in_process(true);
    let daemon = h.daemon(&config).await;
    daemon.wait_for_cycles(1).await;
    daemon.tick_until(2).await;
    daemon.tick_until(3).await;

    let searches = h.fake.requests().iter().filter(|r| r.path == "/v3/projects:search").count();
    assert_eq!(searches, 1, "three cycles, one search");
}

fn project_up(metrics: &str, project: &str) -> Option<f64> {
    sample(metrics, &series("binauthz_project_up", &[("project", project)]))
}

/// Waits until the daemon reports its last reload as `successful` (1) or not (0).
async fn until_reload_reported(daemon: &Daemon, successful: f64) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = daemon.metrics().await;
        if sample(&metrics, "binauthz_config_last_reload_successful") == Some(successful) {
            return metrics;
        }
        assert!(Instant::now() < deadline, "no reload reported as {successful}:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The signal's wiring, in the real binary; what a reload does is the in-process test below.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_and_reports_a_bad_one() {
    let mut world = World::default();
    seed(&mut world, "first");
    let h = Harness::start(world).await;
    let good = as_binary(h.config(&["first"]), free_port());
    let config = h.write(&good, "config.toml");
    let daemon = Daemon::start(&config).await;
    daemon.wait_for_cycles(1).await;

    good.clone().set("scope.bogus", 1).write(&config);
    daemon.signal("HUP");
    until_reload_reported(&daemon, 0.0).await;
    assert!(daemon.get("/healthz").await.is_ok(), "still serving");

    good.write(&config);
    daemon.signal("HUP");
    until_reload_reported(&daemon, 1.0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_leaves_the_old_configuration_in_use_and_a_good_one_applies_to_the_next_cycle() {
    let mut world = World::default();
    seed(&mut world, "first");
    seed(&mut world, "second");
    let h = Harness::start(world).await;
    let good = h.config(&["first"]).in_process(true);
    let daemon = h.daemon(&good).await;
    let before = daemon.wait_for_cycles(1).await;

    // A bad edit that would also audit `second`: refused, and the next cycle still runs the
    // old configuration.
    h.write(&good.clone().set("scope.bogus", 1).set("scope.projects", vec!["first", "second"]), "config.toml");
    daemon.send(Event::Reload).await;
    let after_bad = daemon.tick_until(cycles(&before) + 1).await;
    assert_eq!(sample(&after_bad, "binauthz_config_last_reload_successful"), Some(0.0));
    assert_eq!(project_up(&after_bad, "first"), Some(1.0));
    assert_eq!(project_up(&after_bad, "second"), None, "the refused configuration is not in use");
    assert!(!h.fake.requests().iter().any(|r| r.path.contains("/second/")), "nothing of `second` was read");

    h.write(&good.set("scope.projects", vec!["first", "second"]), "config.toml");
    daemon.send(Event::Reload).await;
    let after = daemon.tick_until(cycles(&after_bad) + 1).await;

    assert_eq!(sample(&after, "binauthz_config_last_reload_successful"), Some(1.0));
    assert_eq!(project_up(&after, "second"), Some(1.0), "{after}");
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tick_while_a_cycle_runs_is_skipped_and_counted() {
    let mut world = World::default();
    seed(&mut world, "slow");
    world.behaviour.faults.push(Fault::delay("/policy", Duration::from_millis(1500)));
    let h = Harness::start(world).await;
    let daemon = h.daemon(&h.config(&["slow"]).set("gcp.request_timeout", "10s").in_process(true)).await;
    h.fake.until_in_flight("/v1/projects/slow/policy").await;

    daemon.send(Event::Tick).await;
    let metrics = daemon.wait_for_cycles(1).await;

    let skipped = sample(&metrics, &series("binauthz_audit_cycles_total", &[("result", "skipped")]));
    assert_eq!(skipped, Some(1.0), "{metrics}");
    assert_eq!(h.fake.max_in_flight("/v1/projects/slow/policy"), 1, "never two cycles at once");
}

/// A config auditing the bundled demo snapshot, listening on a free port.
fn demo_config(dir: &std::path::Path) -> (std::path::PathBuf, u16) {
    let port = free_port();
    let demo = std::fs::canonicalize("config/demo").unwrap();
    (as_binary(TestConfig::snapshot(&demo), port).write(&dir.join("demo.toml")), port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_status_and_watchdog_pings() {
    let dir = tempfile::tempdir().unwrap();
    let (config, port) = demo_config(dir.path());
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
    let (config, _) = demo_config(dir.path());
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
