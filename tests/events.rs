//! Event mode: a change announced on Pub/Sub is re-read, published and acknowledged within
//! seconds, without waiting for a cycle. These tests use the in-process fake Pub/Sub, which
//! can fail on purpose; tests/events_e2e.rs runs the real emulator and a real Alertmanager.

pub mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::audit_log;
use support::config::TestConfig;
use support::daemon::InProcess;
use support::fake_google::shapes::project_number;
use support::fake_google::world::{Fault, World};
use support::fake_pubsub::FakePubSub;
use support::harness::Harness;
use support::monitoring::eventually;
use support::pubsub::Admin;
use support::resources::*;
use support::run::{cycles, sample, series};

const REGION: &str = "us-central1";
const TOPIC: &str = "projects/host/topics/audit";

struct Events {
    h: Harness,
    pubsub: FakePubSub,
    admin: Admin,
    subscription: String,
    daemon: InProcess,
}

fn estate(world: &mut World) {
    let p = world.project("p1");
    p.policy = Some(policy_exempting_functions("p1", REGION));
    p.services = vec![service("p1", REGION, "web"), backing_service("p1", REGION, "hook")];
    p.jobs = vec![job("p1", REGION, "etl")];
    p.functions = vec![function("p1", REGION, "hook")];
    world.project("p2").services = vec![service("p2", REGION, "api")];
}

/// `config` in event mode on `pubsub`'s `subscription`, run in-process.
fn with_events(config: TestConfig, pubsub: &FakePubSub, subscription: &str) -> TestConfig {
    config
        .set("gcp.endpoints.pubsub", pubsub.base_url.as_str())
        .set("events.subscription", subscription)
        .in_process(true)
}

/// The fake Google with `estate`, a fake Pub/Sub with a subscription (`ack_deadline` s), and
/// the daemon in event mode after its first cycle.
async fn start(ack_deadline: u32, edit: impl FnOnce(TestConfig) -> TestConfig) -> Events {
    let mut world = World::default();
    estate(&mut world);
    let h = Harness::start(world).await;
    let pubsub = FakePubSub::start().await;
    let admin = Admin::new(&pubsub.base_url);
    let subscription = admin.topic_and_subscription("host", "audit", "auditor", ack_deadline).await;
    let config = edit(with_events(h.config(&["p1", "p2"]), &pubsub, &subscription));
    let daemon = h.daemon(&config).await;
    daemon.wait_for_cycles(1).await;
    Events { h, pubsub, admin, subscription, daemon }
}

impl Events {
    async fn publish(&self, entry: &Value) -> String {
        self.admin.publish_entry(TOPIC, entry).await
    }

    /// Waits until `message_id` is acknowledged.
    async fn acked(&self, message_id: &str) {
        eventually(&format!("message {message_id} acknowledged"), Duration::from_secs(15), async || {
            self.pubsub.acked(&self.subscription).iter().any(|m| m == message_id).then_some(())
        })
        .await;
    }

    async fn metric(&self, series: &str) -> Option<f64> {
        sample(&self.daemon.metrics().await, series)
    }

    /// The daemon's configuration with event mode on, as `start` writes it (for a reload).
    fn config_with_events(&self) -> TestConfig {
        with_events(self.h.config(&["p1", "p2"]), &self.pubsub, &self.subscription)
    }

    /// p2's `api` loses Binary Authorization and an audit log entry says so: waits until it is
    /// published and the message acknowledged; returns the cycles counted by then.
    async fn unprotect_api_by_event(&self) -> u64 {
        self.h.fake.estate(|w| {
            w.project("p2").services[0] = set(service("p2", REGION, "api"), "/binaryAuthorization", Value::Null)
        });
        let id = self.publish(&audit_log::run_v1_service("ReplaceService", "p2", REGION, "api")).await;
        let metrics = self.until(&compliant("p2", "service", "api"), 0.0).await;
        self.acked(&id).await;
        cycles(&metrics)
    }

    /// Waits until `series` has `value`; returns the scrape.
    async fn until(&self, series: &str, value: f64) -> String {
        eventually(&format!("{series} = {value}"), Duration::from_secs(15), async || {
            let metrics = self.daemon.metrics().await;
            (sample(&metrics, series) == Some(value)).then_some(metrics)
        })
        .await
    }
}

fn compliant(project: &str, kind: &str, name: &str) -> String {
    series("binauthz_resource_compliant", &[("project", project), ("location", REGION), ("kind", kind), ("name", name)])
}

fn counter(name: &str, label: &str, value: &str) -> String {
    series(name, &[(label, value)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprotected_deploy_is_published_and_acknowledged_without_waiting_for_a_cycle() {
    let e = start(10, |c| c).await;
    assert_eq!(e.metric(&compliant("p1", "service", "web")).await, Some(1.0));

    e.h.fake.estate(|w| {
        let web = &mut w.project("p1").services[0];
        *web = set(web.clone(), "/binaryAuthorization", Value::Null);
    });
    let id = e.publish(&audit_log::run_v1_service("ReplaceService", "p1", REGION, "web")).await;

    let metrics = e.until(&compliant("p1", "service", "web"), 0.0).await;
    let violation = series(
        "binauthz_resource_violation",
        &[
            ("project", "p1"),
            ("location", REGION),
            ("kind", "service"),
            ("name", "web"),
            ("reason", "binauthz_disabled"),
            ("suppressed", "false"),
        ],
    );
    assert_eq!(sample(&metrics, &violation), Some(1.0), "{metrics}");
    assert_eq!(cycles(&metrics), 1, "an event, not a cycle, published it");
    e.acked(&id).await;
    let metrics = e.daemon.metrics().await;
    assert_eq!(sample(&metrics, &counter("binauthz_events_received_total", "source", "audit_log")), Some(1.0));
    assert_eq!(sample(&metrics, &counter("binauthz_event_reaudits_total", "result", "changed")), Some(1.0));
    assert_eq!(sample(&metrics, "binauthz_event_lag_seconds_count"), Some(1.0));
    assert!(sample(&metrics, "binauthz_events_last_received_timestamp_seconds").unwrap() > 1.7e9);
    let fetched =
        e.h.fake.requests().iter().filter(|r| r.path == "/v2/projects/p1/locations/us-central1/services/web").count();
    assert_eq!(fetched, 1, "the one service was read again, nothing else listed");

    let (problems, methods) = support::discovery::check_traffic(&e.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(methods.contains("run.v2:projects.locations.services.get"), "{methods:?}");

    // The fix travels the same way.
    e.h.fake.estate(|w| w.project("p1").services[0] = service("p1", REGION, "web"));
    let fix = e.publish(&audit_log::run_v1_service("ReplaceService", "p1", REGION, "web")).await;
    e.until(&compliant("p1", "service", "web"), 1.0).await;
    e.acked(&fix).await;
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_that_change_nothing_are_counted_by_reason_and_acknowledged() {
    let e = start(10, |c| c).await;
    let unknown = {
        let mut entry = audit_log::run_v1_service("ReplaceService", "p1", REGION, "web");
        entry["protoPayload"]["methodName"] = json!("google.cloud.run.v1.Services.SetIamPolicy");
        e.publish(&entry).await
    };
    let failed = e.publish(&audit_log::failed(audit_log::run_v1_service("ReplaceService", "p1", REGION, "web"))).await;
    let elsewhere = e.publish(&audit_log::run_v1_service("CreateService", "not-audited", REGION, "x")).await;
    let garbage = e.admin.publish(TOPIC, b"\xff\xfenot json", json!({})).await;
    let wrong_shape = e.admin.publish(TOPIC, br#"{"textPayload":"hello"}"#, json!({})).await;
    for id in [&unknown, &failed, &elsewhere, &garbage, &wrong_shape] {
        e.acked(id).await;
    }
    let metrics = e.daemon.metrics().await;
    for (reason, n) in [("unknown_method", 1.0), ("failed_call", 1.0), ("out_of_scope", 1.0), ("malformed", 2.0)] {
        assert_eq!(sample(&metrics, &counter("binauthz_events_ignored_total", "reason", reason)), Some(n), "{reason}");
    }
    assert_eq!(sample(&metrics, &compliant("p1", "service", "web")), Some(1.0));
    let reads = e.h.fake.requests().iter().filter(|r| r.path.starts_with("/v2/projects/not-audited")).count();
    assert_eq!(reads, 0, "nothing outside [scope] is read");
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reread_is_left_for_redelivery_and_succeeds_the_next_time() {
    let e = start(1, |c| c).await;
    e.h.fake.estate(|w| {
        let web = &mut w.project("p1").services[0];
        *web = set(web.clone(), "/binaryAuthorization/breakglassJustification", json!("INC-1"));
    });
    // More failures than the client retries: the first re-read fails for good.
    e.h.fake.behaviour(|b| {
        b.faults.push(
            Fault::status(
                "/v2/projects/p1/locations/us-central1/services/web",
                503,
                json!({"error": {"code": 503, "status": "UNAVAILABLE", "message": "down"}}),
            )
            .times(4),
        )
    });
    let id = e.publish(&audit_log::run_v1_service("ReplaceService", "p1", REGION, "web")).await;
    e.until(&counter("binauthz_event_reaudits_total", "result", "failed"), 1.0).await;
    assert!(!e.pubsub.acked(&e.subscription).contains(&id), "not acknowledged while unread");
    e.until(&compliant("p1", "service", "web"), 0.0).await;
    e.acked(&id).await;
    assert_eq!(e.pubsub.deliveries(&e.subscription, &id), 2, "delivered again after its ack deadline");
    // Every call the daemon made to Pub/Sub is a method of the API gcloud's client knows.
    let discovery = support::discovery::Discovery::load();
    for path in e.pubsub.with(|w| w.log.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>()) {
        let method = discovery.method_for("POST", &path).unwrap_or_else(|| panic!("{path} is no Pub/Sub method"));
        assert_eq!(method.api, "pubsub.v1.sdk", "{path}");
    }
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_or_failing_pulls_are_retried_and_counted() {
    let e = start(10, |c| c).await;
    e.pubsub.with(|w| {
        w.faults.push((":pull".into(), 429, 1));
        w.faults.push((":pull".into(), 503, 1));
    });
    e.h.fake.estate(|w| {
        w.project("p2").services[0] = set(service("p2", REGION, "api"), "/binaryAuthorization", Value::Null)
    });
    let id = e.publish(&audit_log::run_v1_service("ReplaceService", "p2", REGION, "api")).await;
    e.until(&compliant("p2", "service", "api"), 0.0).await;
    e.acked(&id).await;
    let metrics = e.daemon.metrics().await;
    for code in ["429", "503"] {
        let failures = sample(&metrics, &series("binauthz_api_requests_total", &[("api", "pubsub"), ("code", code)]));
        assert!(failures >= Some(1.0), "{code}: {metrics}");
    }
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_long_polls_cost_nothing_and_a_deleted_subscription_leaves_the_schedule_auditing() {
    let e = start(10, |c| c).await;
    // Empty polls end on the server's side (500 ms here) and simply start again.
    eventually("several empty pulls", Duration::from_secs(10), async || {
        (e.pubsub.requests(":pull") >= 3).then_some(())
    })
    .await;
    assert_eq!(e.metric(&counter("binauthz_events_received_total", "source", "audit_log")).await, Some(0.0));

    e.admin.delete_subscription(&e.subscription).await;
    e.until(&series("binauthz_api_requests_total", &[("api", "pubsub"), ("code", "404")]), 1.0).await;
    e.daemon.tick_until(2).await;
    assert_eq!(e.metric(&compliant("p1", "service", "web")).await, Some(1.0), "cycles go on");
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_edit_reevaluates_the_projects_last_known_workloads() {
    let e = start(10, |c| c).await;
    let entry = series(
        "binauthz_policy_allowlist_entry_present",
        &[("project", "p1"), ("location", REGION), ("repository", "us-central1-docker.pkg.dev/p1/gcf-artifacts")],
    );
    assert_eq!(e.metric(&entry).await, Some(1.0));
    e.h.fake.estate(|w| w.project("p1").policy = Some(enforcing_policy("p1", &[])));
    let id = e.publish(&audit_log::update_policy("p1")).await;
    let metrics = e.until(&entry, 0.0).await;
    assert_eq!(sample(&metrics, &compliant("p1", "function", "hook")), Some(0.0), "{metrics}");
    e.acked(&id).await;
    assert_eq!(cycles(&metrics), 1, "re-evaluated from what the cycle read, not listed again");
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_removes_the_series_and_a_new_job_appears() {
    let e = start(10, |c| c).await;
    e.h.fake.estate(|w| {
        let p = w.project("p1");
        p.jobs.clear();
        p.jobs.push(set(job("p1", REGION, "nightly"), "/binaryAuthorization", Value::Null));
    });
    let deleted = e.publish(&audit_log::run_v1_job("DeleteJob", "p1", REGION, "etl")).await;
    let created = e.publish(&audit_log::run_v1_job("CreateJob", "p1", REGION, "nightly")).await;
    e.until(&compliant("p1", "job", "nightly"), 0.0).await;
    e.acked(&deleted).await;
    e.acked(&created).await;
    let metrics = e.daemon.metrics().await;
    assert!(!metrics.contains("name=\"etl\""), "the deleted job's series are gone:\n{metrics}");
    assert_eq!(sample(&metrics, &counter("binauthz_event_reaudits_total", "result", "removed")), Some(1.0));
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_counts_the_changes_no_event_announced() {
    let e = start(10, |c| c).await;
    e.h.fake.estate(|w| {
        w.project("p2").services[0] = set(service("p2", REGION, "api"), "/binaryAuthorization", Value::Null)
    });
    e.daemon.tick_until(2).await;
    let metrics = e.daemon.metrics().await;
    assert_eq!(sample(&metrics, "binauthz_reconcile_unexplained_changes_total"), Some(1.0), "{metrics}");
    assert_eq!(sample(&metrics, &compliant("p2", "service", "api")), Some(0.0));
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asset_feed_messages_trigger_the_same_reaudit() {
    let e = start(10, |c| c.set("events.source", "asset_feed")).await;
    let welcome = e
        .admin
        .publish(TOPIC, b"You have successfully configured real time feed 'organizations/1/feeds/f'.", json!({}))
        .await;
    e.h.fake.estate(|w| {
        w.project("p1").services[0] = set(service("p1", REGION, "web"), "/binaryAuthorization", Value::Null)
    });
    let number = project_number("p1");
    let message = json!({
        "asset": {"name": format!("//run.googleapis.com/projects/{number}/locations/{REGION}/services/web"),
                  "assetType": "run.googleapis.com/Service", "ancestors": [format!("projects/{number}")],
                  "updateTime": chrono::Utc::now().to_rfc3339()},
        "priorAssetState": "PRESENT",
        "window": {"startTime": chrono::Utc::now().to_rfc3339()},
    });
    let id = e.admin.publish(TOPIC, message.to_string().as_bytes(), json!({})).await;
    e.until(&compliant("p1", "service", "web"), 0.0).await;
    e.acked(&welcome).await;
    e.acked(&id).await;
    let metrics = e.daemon.metrics().await;
    assert_eq!(sample(&metrics, &counter("binauthz_events_received_total", "source", "asset_feed")), Some(2.0));
    assert_eq!(sample(&metrics, &counter("binauthz_events_ignored_total", "reason", "feed_welcome")), Some(1.0));
    // The number in the asset name was looked up once, with Resource Manager's projects.get.
    let (problems, methods) = support::discovery::check_traffic(&e.h.fake).await;
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(methods.contains("cloudresourcemanager.v3:projects.get"), "{methods:?}");
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_event_mode_going_without_waiting_for_a_cycle() {
    let e = start(10, |c| c).await;
    e.daemon.send(binauthz_auditor::daemon::Event::Reload).await;
    e.until("binauthz_config_last_reload_successful", 1.0).await;
    assert_eq!(e.unprotect_api_by_event().await, 1, "the event, not a cycle, published it");
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_turns_events_on_reads_the_estate_at_once_instead_of_at_the_next_tick() {
    let e = start(10, |c| c.remove("events")).await;
    e.h.write(&e.config_with_events(), "config.toml");
    e.daemon.send(binauthz_auditor::daemon::Event::Reload).await;
    // No tick is sent (the schedule never fires in-process): the reload itself starts a cycle.
    e.until(&series("binauthz_audit_cycles_total", &[("result", "success")]), 2.0).await;

    assert_eq!(e.unprotect_api_by_event().await, 2, "the event, not a third cycle, published it");

    // A reload that leaves event mode on starts no cycle.
    e.daemon.send(binauthz_auditor::daemon::Event::Reload).await;
    e.until("binauthz_config_last_reload_successful", 1.0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cycles(&e.daemon.metrics().await), 2);
    e.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_turns_events_on_mid_cycle_reads_the_estate_again_once_that_cycle_ends() {
    let e = start(10, |c| c.remove("events")).await;
    // A slow Google keeps the ticked cycle running while the reload turns events on: that
    // cycle kept no estate for events, so one more cycle follows it, and only one.
    e.h.fake.behaviour(|b| b.latency = Duration::from_millis(300));
    e.daemon.send(binauthz_auditor::daemon::Event::Tick).await;
    e.h.write(&e.config_with_events(), "config.toml");
    e.daemon.send(binauthz_auditor::daemon::Event::Reload).await;
    e.h.fake.behaviour(|b| b.latency = Duration::ZERO);
    e.until(&series("binauthz_audit_cycles_total", &[("result", "success")]), 3.0).await;

    assert_eq!(e.unprotect_api_by_event().await, 3, "the event, not a fourth cycle, published it");
    e.daemon.shutdown().await.unwrap();
}
