//! Continuous validation's cost in Google requests: N services (over P projects) serving M
//! distinct digests, A required attestors, the daemon in-process against the fake Google.
//! Counts the requests of each cycle: the first (cold), the next within `recheck_interval`
//! (passes reused), and one after `recheck_interval` has passed; beside them the lower bound
//! (each attestor once, each (attestor, digest) once, one revisions list per project).
//!
//!   cargo bench --bench validation
//!   BENCH_SERVICES=2000 BENCH_DIGESTS=50 cargo bench --bench validation
//!
//! Knobs (environment): BENCH_PROJECTS (20), BENCH_SERVICES (500, in total), BENCH_DIGESTS
//! (25), BENCH_ATTESTORS (2), BENCH_UNATTESTED (every Nth digest has no attestation: 5).

#[path = "../tests/support/mod.rs"]
pub mod support;

use std::time::{Duration, Instant};

use support::attestation::{SigningKey, attestor, occurrence, payload};
use support::fake_google::world::{Behaviour, World};
use support::harness::Harness;
use support::resources::*;

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

const REGION: &str = "us-central1";

/// Requests of each validation read since the log was last cleared.
#[derive(Debug, Clone, Copy)]
struct Reads {
    revisions: usize,
    attestors: usize,
    occurrences: usize,
    validate: usize,
    all: usize,
}

fn reads(h: &Harness) -> Reads {
    let requests = h.fake.api_requests();
    let count = |needle: &str| requests.iter().filter(|r| r.path.contains(needle)).count();
    Reads {
        revisions: count("/revisions"),
        attestors: requests.iter().filter(|r| r.path.contains("/attestors/") && r.method == "GET").count(),
        occurrences: count("/occurrences"),
        validate: count(":validateAttestationOccurrence"),
        all: requests.len(),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes --bench; `cargo test --bench validation` runs a small smoke round.
    let full = std::env::args().any(|a| a == "--bench");
    let (projects, services, digests, attestors, unattested) = (
        env("BENCH_PROJECTS", if full { 20usize } else { 4 }),
        env("BENCH_SERVICES", if full { 500usize } else { 40 }),
        env("BENCH_DIGESTS", if full { 25usize } else { 10 }),
        env("BENCH_ATTESTORS", 2usize),
        env("BENCH_UNATTESTED", 5usize),
    );
    let h = Harness::start(World::behaving(Behaviour { page_size: 1000, ..Behaviour::default() })).await;
    let keys: Vec<SigningKey> = (0..attestors).map(|i| SigningKey::new(h.dir(), &format!("key{i}"))).collect();
    let names: Vec<String> = (0..attestors).map(|i| format!("projects/attestors-prj/attestors/a{i}")).collect();
    let image = |d: usize| format!("{REGION}-docker.pkg.dev/builds/apps/app{}@sha256:{d:064x}", d % 7);
    let ids: Vec<String> = (0..projects).map(|p| format!("team-{p:04}")).collect();
    h.fake.estate(|e| {
        for (name, key) in names.iter().zip(&keys) {
            e.attestors.insert(name.clone(), attestor(name, &[key.public_key()]));
        }
        let required: Vec<&str> = names.iter().map(String::as_str).collect();
        for id in &ids {
            e.project(id).policy = Some(attestation_policy(id, &required, &[]));
        }
        e.project("attestors-prj");
        for s in 0..services {
            let id = &ids[s % projects];
            let name = format!("svc-{s:05}");
            // Two revisions per service, 90/10, each running one of the shared digests.
            let (r1, r2) = (format!("{name}-00001-aaa"), format!("{name}-00002-bbb"));
            let p = e.project(id);
            p.services.push(serving(service(id, REGION, &name), &[(&r1, 90, None), (&r2, 10, None)]));
            p.revisions.push(revision(id, REGION, &name, &r1, &image(s % digests)));
            p.revisions.push(revision(id, REGION, &name, &r2, &image((s + 1) % digests)));
        }
    });
    for d in (0..digests).filter(|d| d % unattested != unattested - 1) {
        let body = payload(&image(d));
        for (name, key) in names.iter().zip(&keys) {
            let note = name.replace("/attestors/", "/notes/");
            let signature = key.sign(&body);
            h.fake.estate(|e| {
                let o =
                    occurrence("builds", e.occurrences.len() + 1, &note, &image(d), &body, &[(&key.id, &signature)]);
                e.occurrences.push(o)
            });
        }
    }
    let ids_ref: Vec<&str> = ids.iter().map(String::as_str).collect();
    let recheck = Duration::from_secs(2);
    let config = h
        .config(&ids_ref)
        .set("validation.enabled", true)
        .set("validation.recheck_interval", "2s")
        .set("gcp.concurrency", 16)
        .in_process(false);
    let baseline = h.config(&ids_ref).set("gcp.concurrency", 16).in_process(false);

    let daemon = h.daemon(&baseline).await;
    h.fake.forget_requests();
    daemon.tick_until(1).await;
    let without = reads(&h);
    daemon.shutdown().await.unwrap();

    let daemon = h.daemon(&config).await;
    let mut rows = Vec::new();
    for (n, label) in [(1, "cold"), (2, "within recheck_interval"), (3, "after recheck_interval")] {
        if n == 3 {
            tokio::time::sleep(recheck + Duration::from_millis(200)).await;
        }
        h.fake.forget_requests();
        let started = Instant::now();
        daemon.tick_until(n).await;
        rows.push((label, reads(&h), started.elapsed()));
    }
    daemon.shutdown().await.unwrap();

    let failing = (0..digests).filter(|d| d % unattested == unattested - 1).count();
    println!(
        "{projects} projects, {services} services (2 serving revisions each), {digests} distinct digests ({failing} unattested), {attestors} attestors"
    );
    println!(
        "lower bound per cold cycle: {projects} revisions lists, {attestors} attestor reads, {} occurrence lists",
        attestors * digests
    );
    println!("cycle without [validation]: {} requests in all", without.all);
    println!(
        "| cycle | revisions lists | attestors.get | occurrence lists | validateAttestationOccurrence | all requests | extra over no validation | wall |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    // Each figure must be the lower bound: more would mean a cache or a deduplication broke.
    let expected = [(projects, attestors * digests), (0, attestors * failing), (0, attestors * digests)];
    for ((label, r, _), (revisions, occurrences)) in rows.iter().zip(expected) {
        assert_eq!((r.revisions, r.attestors, r.occurrences), (revisions, attestors, occurrences), "{label}");
    }
    for (label, r, wall) in rows {
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {:.2} s |",
            r.revisions,
            r.attestors,
            r.occurrences,
            r.validate,
            r.all,
            r.all.saturating_sub(without.all),
            wall.as_secs_f64()
        );
    }
}
