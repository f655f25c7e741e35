//! Org-scale benchmark: the real binary against the in-process fake Google with injected
//! per-request latency, for generated organisations, side by side with the lower bound and
//! (optionally) Google's own Python clients in the loop a user would write.
//!
//!   cargo bench --bench org_scale                       # 100, 1000, 5000 projects
//!   BENCH_SIZES=100 BENCH_PEER=1 cargo bench --bench org_scale
//!
//! Knobs (environment): BENCH_SIZES (comma list), BENCH_LATENCY_MS (50), BENCH_CONCURRENCY
//! (64), BENCH_REGIONS (2), BENCH_WORKLOADS (20 per project), BENCH_PEER (run the Python
//! peer, needs `pip install google-cloud-run google-cloud-functions
//! google-cloud-binary-authorization`), BENCH_PEER_PROJECTS (100).

#[path = "../tests/support/mod.rs"]
pub mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::fake_google::world::{Behaviour, World};
use support::harness::Harness;
use support::resources::*;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A generated organisation: `projects` projects over `regions` regions, `workloads` per
/// project (40% services, 20% jobs, 10% worker pools, 30% gen2 functions with their backing
/// services), one in ten workloads non-compliant.
fn organisation(projects: usize, regions: usize, workloads: usize) -> World {
    let mut world = World::behaving(Behaviour { page_size: 1000, anonymous_ok: true, ..Behaviour::default() });
    let region_names: Vec<String> = ["us-central1", "europe-west1", "asia-east1", "us-east1", "europe-west4"]
        .iter()
        .cycle()
        .take(regions)
        .map(|r| r.to_string())
        .collect();
    for p in 0..projects {
        let id = format!("org-project-{p:05}");
        let patterns: Vec<String> = region_names.iter().flat_map(|r| function_patterns(&id, r)).collect();
        let project = world.project(&id);
        project.locations = region_names.clone();
        project.policy = Some(enforcing_policy(&id, &patterns.iter().map(String::as_str).collect::<Vec<_>>()));
        for w in 0..workloads {
            let region = &region_names[w % region_names.len()];
            let name = format!("wl-{w:03}");
            let broken = w % 10 == 9;
            let unprotect = |v: Value| if broken { set(v, "/binaryAuthorization", Value::Null) } else { v };
            match w * 10 / workloads.max(1) {
                0..=3 => project.services.push(unprotect(service(&id, region, &name))),
                4..=5 => project.jobs.push(unprotect(job(&id, region, &name))),
                6 => project.worker_pools.push(unprotect(worker_pool(&id, region, &name))),
                _ => {
                    project.functions.push(function(&id, region, &name));
                    project.services.push(unprotect(backing_service(&id, region, &name)));
                }
            }
        }
    }
    world
}

fn vm_hwm_kib(pid: u32) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()
}

struct Row {
    projects: usize,
    workloads: usize,
    requests: usize,
    min_requests: usize,
    wall: Duration,
    bound: Duration,
    rss_mib: f64,
    peer: Option<(usize, Duration)>,
    metrics: Option<MetricsFigures>,
}

/// /metrics at the largest size: plain, and gzipped as Prometheus asks for it.
struct MetricsFigures {
    plain: Duration,
    plain_bytes: usize,
    /// The first gzip scrape after a cycle compresses the audit results (once per cycle).
    gzip_first: Duration,
    gzip: Duration,
    gzip_bytes: usize,
    hwm_mib: f64,
}

/// The median of five GETs of /metrics, and the body size.
async fn median_scrape(http: &reqwest::Client, url: &str, accept: &str) -> (Duration, usize) {
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..5 {
        let t = Instant::now();
        size = http.get(url).header("accept-encoding", accept).send().await.unwrap().bytes().await.unwrap().len();
        times.push(t.elapsed());
    }
    times.sort();
    (times[2], size)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs a small smoke round so the
    // harness itself stays tested.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: Vec<usize> = std::env::var("BENCH_SIZES")
        .unwrap_or_else(|_| if full { "100,1000,5000".into() } else { "10".into() })
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let latency = Duration::from_millis(env("BENCH_LATENCY_MS", if full { 50 } else { 1 }));
    let concurrency: usize = env("BENCH_CONCURRENCY", 64);
    let regions: usize = env("BENCH_REGIONS", 2);
    let per_project: usize = env("BENCH_WORKLOADS", 20);
    let peer = full && std::env::var("BENCH_PEER").is_ok();
    let peer_projects: usize = env("BENCH_PEER_PROJECTS", 100);
    // BENCH_PER_WORKLOAD=false: the daemon exports per-project counts instead ([metrics]).
    let per_workload: bool = env("BENCH_PER_WORKLOAD", true);
    let mut rows = Vec::new();

    for &projects in &sizes {
        let mut world = organisation(projects, regions, per_project);
        world.behaviour.latency = latency;
        let h = Harness::start(world).await;
        let fake = &h.fake;
        let ids: Vec<String> = (0..projects).map(|p| format!("org-project-{p:05}")).collect();
        let id_refs: Vec<&str> = ids.iter().map(String::as_str).collect();
        // The daemon started on it below serves on a port of its own and audits once, at start.
        let mut config = h
            .config(&id_refs)
            .set("gcp.concurrency", concurrency as i64)
            .set("gcp.request_timeout", "30s")
            .set("schedule.cron", "0 0 1 1 *")
            .set("server.listen", format!("127.0.0.1:{}", support::run::free_port()))
            .set("metrics.per_workload", per_workload);
        // The benchmark measures the auditor, not the pacing it would do against Google.
        for api in ["run", "functions", "binaryauthorization", "resourcemanager", "asset"] {
            config = config.set(&format!("gcp.rate_limits.{api}"), 1_000_000);
        }
        let config = h.write(&config, "config.toml");

        // One audit cycle, as `audit` runs it.
        let started = Instant::now();
        // BENCH_WRAPPER="valgrind --tool=massif" profiles the audit instead of timing it.
        let wrapper = std::env::var("BENCH_WRAPPER").unwrap_or_default();
        let mut argv: Vec<String> = wrapper.split_whitespace().map(String::from).collect();
        argv.extend([support::run::BIN.to_string(), "audit".into(), "--config".into()]);
        argv.extend([config.to_str().unwrap().to_string(), "--format".into(), "json".into()]);
        let child = tokio::process::Command::new(&argv[0])
            .args(&argv[1..])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // getrusage would count the bench's own pages, shared with the child until exec;
        // the child's VmHWM, sampled until it exits, is its own peak.
        let pid = child.id().unwrap();
        let sampler = tokio::spawn(async move {
            let mut peak = 0;
            while let Some(hwm) = vm_hwm_kib(pid) {
                peak = peak.max(hwm);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        });
        let out = child.wait_with_output().await.unwrap();
        let wall = started.elapsed();
        let report: Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
        assert_eq!(report["complete"], true, "{}", String::from_utf8_lossy(&out.stderr));
        let rss_mib = sampler.await.unwrap() as f64 / 1024.0;
        let requests = fake.api_requests().len();
        // Fewest requests any client could make: policy + functions + 3 Run lists per project,
        // after the one token request everything waits for.
        let min_requests = projects * 5;
        let bound = latency * (1 + min_requests.div_ceil(concurrency)) as u32;
        let workloads = report["summary"]["resources"].as_u64().unwrap() as usize;

        // /metrics at this size, from the daemon.
        let metrics = if projects == *sizes.iter().max().unwrap() {
            let daemon = support::run::Daemon::start(&config).await;
            daemon.wait_for_cycles(1).await;
            // reqwest is built without gzip here: bodies arrive as sent.
            let http = support::run::http_client();
            let url = format!("{}/metrics", daemon.url);
            let (plain, plain_bytes) = median_scrape(&http, &url, "identity").await;
            let t = Instant::now();
            http.get(&url).header("accept-encoding", "gzip").send().await.unwrap().bytes().await.unwrap();
            let gzip_first = t.elapsed();
            let (gzip, gzip_bytes) = median_scrape(&http, &url, "gzip").await;
            let hwm_mib = vm_hwm_kib(daemon.child.id().unwrap()).unwrap_or(0) as f64 / 1024.0;
            Some(MetricsFigures { plain, plain_bytes, gzip_first, gzip, gzip_bytes, hwm_mib })
        } else {
            None
        };

        let peer_result = if peer && projects == sizes[0] {
            let n = peer_projects.min(projects);
            let started = Instant::now();
            let status = std::process::Command::new("python3")
                .arg("benches/peer_google_clients.py")
                .args(["--endpoint", &fake.base_url, "--projects", &n.to_string(), "--regions", &regions.to_string()])
                .status()
                .expect("python3");
            assert!(status.success(), "the peer loop failed");
            Some((n, started.elapsed()))
        } else {
            None
        };
        rows.push(Row {
            projects,
            workloads,
            requests,
            min_requests,
            wall,
            bound,
            rss_mib,
            peer: peer_result,
            metrics,
        });
    }

    println!(
        "\nlatency {latency:?} per request, concurrency {concurrency}, {regions} regions, {per_project} workloads per project\n"
    );
    println!(
        "| projects | workloads | requests (per project) | lower bound | cycle | cycle / bound | audit peak RSS |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} ({:.1}; minimum {}) | {:.2} s | {:.2} s | {:.2}x | {:.0} MiB |",
            r.projects,
            r.workloads,
            r.requests,
            r.requests as f64 / r.projects as f64,
            r.min_requests,
            r.bound.as_secs_f64(),
            r.wall.as_secs_f64(),
            r.wall.as_secs_f64() / r.bound.as_secs_f64(),
            r.rss_mib
        );
    }
    for r in &rows {
        if let Some(m) = &r.metrics {
            let mib = |bytes: usize| bytes as f64 / (1 << 20) as f64;
            println!(
                "\n/metrics at {} workloads: plain {:.1} MiB, median render+transfer {:.0} ms; gzip {:.2} MiB ({:.1}x smaller), first scrape after a cycle {:.0} ms (compresses once), then median {:.0} ms; daemon peak RSS {:.0} MiB",
                r.workloads,
                mib(m.plain_bytes),
                m.plain.as_secs_f64() * 1000.0,
                mib(m.gzip_bytes),
                m.plain_bytes as f64 / m.gzip_bytes as f64,
                m.gzip_first.as_secs_f64() * 1000.0,
                m.gzip.as_secs_f64() * 1000.0,
                m.hwm_mib
            );
        }
        if let Some((n, t)) = r.peer {
            let ours_per_project = r.wall.as_secs_f64() / r.projects as f64;
            let theirs_per_project = t.as_secs_f64() / n as f64;
            println!(
                "\npeer (Google's Python clients, sequential loop) over {n} projects: {:.1} s ({:.3} s/project) vs ours {:.3} s/project: {:.0}x",
                t.as_secs_f64(),
                theirs_per_project,
                ours_per_project,
                theirs_per_project / ours_per_project
            );
        }
    }
}
