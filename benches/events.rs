//! Event-mode benchmark: the real binary in event mode against the in-process fake Google
//! (with per-request latency) and the fake Pub/Sub, for an organisation of many projects.
//! Deploys are simulated at a steady rate: each changes one workload in the fake and publishes
//! the audit log entry the deploy would produce. Lag is measured per message, from its
//! publication to its acknowledgement (which the daemon sends right after publishing the new
//! state), and the daemon's peak memory with events on and off.
//!
//!   cargo bench --bench events                         # 1,000 projects, 100 events/s, 100 ms
//!   BENCH_RUN_LIMIT=1200 cargo bench --bench events    # the default Run rate limit
//!
//! Knobs (environment): BENCH_PROJECTS (1000), BENCH_WORKLOADS (10 per project),
//! BENCH_RATE (events/s, 100), BENCH_SECONDS (30), BENCH_LATENCY_MS (100), BENCH_RUN_LIMIT
//! (requests/min for the Run API during the deploys; default raised to 60000, as after a
//! quota increase; the first cycle always runs unthrottled, and the limit is applied by a
//! reload before the deploys start).

#[path = "../tests/support/mod.rs"]
pub mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::audit_log;
use support::fake_google::world::{Behaviour, World};
use support::fake_pubsub::FakePubSub;
use support::harness::Harness;
use support::pubsub::Admin;
use support::resources::*;
use support::run::{Daemon, free_port};

const REGION: &str = "us-central1";

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn vm_hwm_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs a small smoke round.
    let full = std::env::args().any(|a| a == "--bench");
    let projects: usize = env("BENCH_PROJECTS", if full { 1000 } else { 10 });
    let per_project: usize = env("BENCH_WORKLOADS", 10);
    let rate: u64 = env("BENCH_RATE", if full { 100 } else { 20 });
    let seconds: u64 = env("BENCH_SECONDS", if full { 30 } else { 2 });
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", if full { 100 } else { 1 }));
    let run_limit: u32 = env("BENCH_RUN_LIMIT", 60_000);

    let mut world = World::behaving(Behaviour { page_size: 1000, latency, ..Behaviour::default() });
    let ids: Vec<String> = (0..projects).map(|p| format!("org-project-{p:05}")).collect();
    for id in &ids {
        let p = world.project(id);
        p.locations = vec![REGION.into()];
        p.policy = Some(policy_exempting_functions(id, REGION));
        p.services = (0..per_project).map(|w| service(id, REGION, &format!("svc-{w:03}"))).collect();
    }
    let h = Harness::start(world).await;
    let pubsub = FakePubSub::start().await;
    pubsub.with(|w| w.long_poll = Duration::from_secs(5));
    let admin = Admin::new(&pubsub.base_url);
    let subscription = admin.topic_and_subscription("host", "audit", "auditor", 60).await;

    let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let base = h
        .config(&id_refs)
        .set("gcp.request_timeout", "30s")
        .set("gcp.concurrency", 64)
        .set("gcp.rate_limits.run", 1_000_000)
        .set("gcp.rate_limits.functions", 1_000_000)
        .set("gcp.rate_limits.binaryauthorization", 1_000_000)
        .set("schedule.cron", "0 0 1 1 *");

    // Memory without events: the cycle drops each inventory once evaluated.
    let plain = h.write(&base.clone().set("server.listen", format!("127.0.0.1:{}", free_port())), "plain.toml");
    let daemon = Daemon::start(&plain).await;
    daemon.wait_for_cycles(1).await;
    let plain_mib = vm_hwm_mib(daemon.child.id().unwrap());
    drop(daemon);

    let events = base
        .set("server.listen", format!("127.0.0.1:{}", free_port()))
        .set("gcp.endpoints.pubsub", pubsub.base_url.as_str())
        .set("events.subscription", subscription.as_str());
    let config = h.write(&events, "events.toml");
    let daemon = Daemon::start(&config).await;
    let started = Instant::now();
    daemon.wait_for_cycles(1).await;
    let cycle = started.elapsed();
    let events_mib_after_cycle = vm_hwm_mib(daemon.child.id().unwrap());
    events.set("gcp.rate_limits.run", i64::from(run_limit)).write(&config);
    // The reload timestamp has one-second resolution: let it move.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    daemon.signal("HUP");
    let reloaded = "binauthz_config_last_reload_success_timestamp_seconds";
    let before = support::run::sample(&daemon.metrics().await, reloaded);
    while support::run::sample(&daemon.metrics().await, reloaded) == before {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Deploys at a steady rate, each to a different workload (no coalescing helps).
    let total = (rate * seconds) as usize;
    let mut published: Vec<(String, Instant)> = Vec::with_capacity(total);
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let sending = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (project, name) = (&ids[i % projects], format!("svc-{:03}", (i / projects) % per_project));
        let protected = (i / (projects * per_project)) % 2 == 1;
        h.fake.estate(|w| {
            let s = service(project, REGION, &name);
            let s = if protected { s } else { set(s, "/binaryAuthorization", Value::Null) };
            let services = &mut w.project(project).services;
            if let Some(slot) =
                services.iter_mut().find(|v| v["name"].as_str().is_some_and(|n| n.ends_with(&format!("/{name}"))))
            {
                *slot = s;
            }
        });
        let entry = audit_log::run_v1_service("ReplaceService", project, REGION, &name);
        let at = Instant::now();
        let id = admin.publish_entry("projects/host/topics/audit", &entry).await;
        published.push((id, at));
    }
    let sent_in = sending.elapsed();

    let deadline = Instant::now() + Duration::from_secs(600);
    let acked = loop {
        let acked = pubsub.ack_times(&subscription);
        if acked.len() >= total || Instant::now() > deadline {
            break acked;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let acked: std::collections::HashMap<String, Instant> = acked.into_iter().collect();
    let mut lags: Vec<f64> = published
        .iter()
        .filter_map(|(id, at)| acked.get(id).map(|done| done.duration_since(*at).as_secs_f64()))
        .collect();
    lags.sort_by(f64::total_cmp);
    let events_mib = vm_hwm_mib(daemon.child.id().unwrap());
    let metrics = daemon.metrics().await;
    let count = |name: &str| support::run::sample(&metrics, name).unwrap_or(0.0);

    println!(
        "\n{projects} projects x {per_project} services, {latency:?} per Google request, Run limit {run_limit}/min; \
         first cycle {:.1} s",
        cycle.as_secs_f64()
    );
    println!(
        "{total} deploys at {rate}/s (sent in {:.1} s): {} acknowledged; lag publish -> ack p50 {:.3} s, p99 {:.3} s, max {:.3} s",
        sent_in.as_secs_f64(),
        lags.len(),
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );
    println!(
        "re-audits changed {}, unchanged {}, failed {}; daemon peak RSS {:.0} MiB without events, \
         {:.0} MiB with events after the first cycle, {:.0} MiB at the end",
        count("binauthz_event_reaudits_total{result=\"changed\"}"),
        count("binauthz_event_reaudits_total{result=\"unchanged\"}"),
        count("binauthz_event_reaudits_total{result=\"failed\"}"),
        plain_mib,
        events_mib_after_cycle,
        events_mib
    );
    assert_eq!(lags.len(), total, "every event acknowledged");
}
