//! The monitoring path end to end with the real Debian packages: Prometheus scrapes two
//! replicas of the daemon with the shipped rules and sends to one Alertmanager; both replicas
//! push straight to another. Every dashboard panel must evaluate and return data on that
//! Prometheus, the fleet's numbers must be the one-replica numbers, and each violation must be
//! one alert in each Alertmanager.
//! Missing `prometheus` or `prometheus-alertmanager` binaries fail the test (scripts/test
//! installs them).

pub mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::attestation::{SigningKey, attestor, occurrence, payload};
use support::fake_google::world::{Api, Fault, World};
use support::harness::Harness;
use support::monitoring::{Proc, active_alerts, eventually, get_json, has_alert, spawn, start_alertmanager};
use support::resources::*;
use support::run::{Daemon, free_port, http_client, sample};

const REGION: &str = "us-central1";

/// The shipped rules, with `for:` set to 0 (the waits are proven by promtool's unit tests)
/// and recording rules evaluated every second. Job `binauthz-auditor` scrapes both replicas;
/// job `single` scrapes the first alone, for the one-replica numbers. Its `external_labels`
/// are what the replicas' `extra_labels` match.
fn start_prometheus(dir: &Path, port: u16, replicas: [u16; 2], alertmanager_port: u16) -> Proc {
    let alerts = std::fs::read_to_string("config/prometheus/alerts.yml").unwrap();
    let alerts: String = alerts
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("for:") {
                format!("{}for: 0s", &l[..l.len() - l.trim_start().len()])
            } else {
                l.into()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(dir.join("alerts.yml"), alerts).unwrap();
    let rules = std::fs::read_to_string("config/prometheus/rules.yml").unwrap();
    std::fs::write(dir.join("rules.yml"), rules.replace("interval: 1m", "interval: 1s")).unwrap();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n  external_labels:\n    cluster: eu-1\nrule_files:\n  - {alerts}\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: binauthz-auditor\n    static_configs:\n      - targets: ['127.0.0.1:{a}', '127.0.0.1:{b}']\n  - job_name: single\n    static_configs:\n      - targets: ['127.0.0.1:{a}']\n",
            a = replicas[0],
            b = replicas[1],
            alerts = dir.join("alerts.yml").display(),
            rules = dir.join("rules.yml").display(),
        ),
    )
    .unwrap();
    spawn(
        "prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
    )
}

fn seed(world: &mut World) {
    let id = "shop-prod";
    let p = world.project(id);
    p.policy = Some(policy_exempting_functions(id, REGION));
    p.services = vec![
        service(id, REGION, "web"),
        set(service(id, REGION, "open"), "/binaryAuthorization", Value::Null),
        set(service(id, REGION, "glass"), "/binaryAuthorization/breakglassJustification", json!("INC-9")),
        set(service(id, REGION, "accepted"), "/binaryAuthorization/breakglassJustification", json!("INC-8")),
        backing_service(id, REGION, "hook"),
    ];
    p.jobs = vec![job(id, REGION, "etl")];
    p.worker_pools = vec![worker_pool(id, REGION, "consumer")];
    p.functions = vec![function(id, REGION, "hook"), function(id, "europe-west1", "far")];

    let lab = world.project("lab-dev");
    lab.policy = Some(set(
        enforcing_policy("lab-dev", &["us-central1-docker.pkg.dev/lab-dev/**"]),
        "/defaultAdmissionRule/enforcementMode",
        json!("DRYRUN_AUDIT_LOG_ONLY"),
    ));
    lab.services = vec![service("lab-dev", REGION, "notebook")];
    lab.disabled = vec![Api::Functions];

    world.project("plain").services = vec![service("plain", REGION, "site")];

    world.project("broken").services = vec![service("broken", REGION, "orphan")];
    world.behaviour.faults.push(Fault::status(
        "/v1/projects/broken/policy",
        500,
        json!({"error": {"code": 500, "message": "internal", "status": "INTERNAL"}}),
    ));
}

/// Continuous validation's evidence: each serving revision of the seeded services (the fake
/// names a service's latest revision `NAME-00003-abc`), shop-prod's attestor and an
/// attestation of every image but the `canary` service's 10 % revision.
fn seed_validation(h: &Harness) {
    let key = SigningKey::new(h.dir(), "built-by-ci");
    let attestor_name = "projects/shop-prod/attestors/built-by-ci";
    h.fake.estate(|e| {
        e.attestors.insert(attestor_name.into(), attestor(attestor_name, &[key.public_key()]));
        let shop = e.project("shop-prod");
        shop.services.push(serving(
            service("shop-prod", REGION, "canary"),
            &[("canary-00003-abc", 90, None), ("canary-00004-new", 10, None)],
        ));
        shop.revisions.push(revision(
            "shop-prod",
            REGION,
            "canary",
            "canary-00004-new",
            &image_by_digest("shop-prod", REGION, "canary", 'b'),
        ));
        for id in ["shop-prod", "lab-dev", "plain", "broken"] {
            let p = e.project(id);
            let serving: Vec<(String, String, String)> = p
                .services
                .iter()
                .map(|s| {
                    let name = s["name"].as_str().unwrap().rsplit('/').next().unwrap().to_owned();
                    let image = s["template"]["containers"][0]["image"].as_str().unwrap().to_owned();
                    (name.clone(), format!("{name}-00003-abc"), image)
                })
                .collect();
            for (service, revision_name, image) in serving {
                // Function images are built by tag; the revision records the digest.
                let by_digest = match image.split_once(':') {
                    Some((repo, _)) if !image.contains('@') => format!("{repo}@sha256:{}", "c".repeat(64)),
                    _ => image,
                };
                p.revisions.push(revision(id, REGION, &service, &revision_name, &by_digest));
            }
        }
        let attested: Vec<String> = e.projects["shop-prod"]
            .revisions
            .iter()
            .filter(|r| r["metadata"]["name"] != "canary-00004-new")
            .map(|r| r["status"]["imageDigest"].as_str().unwrap().to_owned())
            .collect();
        for (n, image) in attested.iter().enumerate() {
            let body = payload(image);
            let o = occurrence(
                "shop-prod",
                n + 1,
                "projects/shop-prod/notes/built-by-ci",
                image,
                &body,
                &[(&key.id, &key.sign(&body))],
            );
            e.occurrences.push(o);
        }
    });
}

/// Every alert in every group of an Alertmanager (`/api/v2/alerts/groups`).
async fn grouped_alerts(port: u16) -> Option<Vec<Value>> {
    let groups = get_json(&format!("http://127.0.0.1:{port}/api/v2/alerts/groups")).await?;
    Some(groups.as_array()?.iter().flat_map(|g| g["alerts"].as_array().cloned().unwrap_or_default()).collect())
}

fn entries(alerts: &[Value], (alertname, label, value): (&str, &str, &str)) -> usize {
    alerts.iter().filter(|a| a["labels"]["alertname"] == alertname && a["labels"][label] == value).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_give_on_call_one_alert_per_problem_and_the_one_replica_numbers() {
    let mut world = World::default();
    seed(&mut world);
    let h = Harness::start(world).await;
    seed_validation(&h);
    let (prometheus_port, am_rules_port, am_push_port) = (free_port(), free_port(), free_port());
    let replica_ports = [free_port(), free_port()];
    let _am_rules = start_alertmanager(h.dir(), "am-rules", am_rules_port);
    let _am_push = start_alertmanager(h.dir(), "am-push", am_push_port);
    let _prometheus = start_prometheus(h.dir(), prometheus_port, replica_ports, am_rules_port);
    let mut replicas = Vec::new();
    for (i, port) in replica_ports.into_iter().enumerate() {
        let extra = format!(
            "[schedule]\ncron = \"*/2 * * * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n\
             [alertmanager]\nurls = [\"http://127.0.0.1:{am_push_port}\"]\ntimeout = \"2s\"\nresend_interval = \"1s\"\n\n\
             [alertmanager.extra_labels]\ncluster = \"eu-1\"\n\n\
             [validation]\nenabled = true\n\n\
             [[suppressions]]\nproject = \"shop-*\"\nname = \"accepted\"\nviolation = \"breakglass\"\nreason = \"INC-8, signed off\"\nexpires = \"2099-01-01\"\n\n\
             [[suppressions]]\nname = \"etl\"\nreason = \"long gone\"\nexpires = \"2020-01-01\"\n"
        );
        let config = h.config(&["broken", "lab-dev", "plain", "shop-prod"]).merge(&extra);
        replicas.push(Daemon::start(&h.write(&config, &format!("replica-{i}.toml"))).await);
    }
    let metrics = replicas[0].wait_for_cycles(1).await;
    replicas[1].wait_for_cycles(1).await;
    assert!(metrics.contains("name=\"accepted\",reason=\"breakglass\",suppressed=\"true\""), "{metrics}");
    assert!(metrics.contains("binauthz_suppression{project=\"*\",location=\"*\",kind=\"*\",name=\"etl\",violation=\"\",expires=\"2020-01-02T00:00:00Z\",state=\"expired\"} 1"));

    let prom = format!("http://127.0.0.1:{prometheus_port}");
    eventually("Prometheus to scrape both replicas", Duration::from_secs(60), async || {
        let up = get_json(&format!("{prom}/api/v1/query?query=sum(up{{job=%22binauthz-auditor%22}})")).await?;
        (up["data"]["result"][0]["value"][1] == "2").then_some(())
    })
    .await;

    // Alerts from the shipped rules, through Prometheus: one per problem, from two replicas.
    let expected_from_rules = [
        ("BinauthzWorkloadBinauthzDisabled", "name", "open"),
        ("BinauthzWorkloadBreakglass", "name", "glass"),
        ("BinauthzWorkloadAllowlistMissing", "name", "far"),
        ("BinauthzAllowlistEntryMissing", "project", "shop-prod"),
        ("BinauthzPolicyDryRun", "project", "lab-dev"),
        ("BinauthzPolicyAllowlistTooBroad", "project", "lab-dev"),
        ("BinauthzPolicyAlwaysAllow", "project", "plain"),
        ("BinauthzProjectAuditFailing", "project", "broken"),
        ("BinauthzWorkloadComplianceUnknown", "name", "orphan"),
        ("BinauthzWorkloadUnattestedRevision", "name", "canary"),
    ];
    let from_rules = eventually("the rule alerts in Alertmanager", Duration::from_secs(60), async || {
        let alerts = grouped_alerts(am_rules_port).await?;
        expected_from_rules.iter().all(|e| entries(&alerts, *e) > 0).then_some(alerts)
    })
    .await;
    for expected in expected_from_rules {
        assert_eq!(entries(&from_rules, expected), 1, "{expected:?} from the rules, two replicas");
    }
    assert!(!has_alert(&from_rules, "BinauthzWorkloadBreakglass", "name", "accepted"), "suppressed: no alert");
    for absent in ["BinauthzExporterAbsent", "BinauthzExporterDown", "BinauthzAuditStale"] {
        assert!(!from_rules.iter().any(|a| a["labels"]["alertname"] == absent), "{absent} must stay silent");
    }

    // Direct pushes from both replicas: the same names and labels, one entry per problem.
    let pushed_expected = [
        ("BinauthzWorkloadBinauthzDisabled", "name", "open"),
        ("BinauthzWorkloadBreakglass", "name", "glass"),
        ("BinauthzWorkloadAllowlistMissing", "name", "far"),
        ("BinauthzAllowlistEntryMissing", "project", "shop-prod"),
        ("BinauthzPolicyDryRun", "project", "lab-dev"),
        ("BinauthzPolicyAlwaysAllow", "project", "plain"),
        ("BinauthzWorkloadUnattestedRevision", "name", "canary"),
    ];
    let pushed = eventually("pushed alerts in Alertmanager", Duration::from_secs(30), async || {
        let alerts = grouped_alerts(am_push_port).await?;
        pushed_expected.iter().all(|e| entries(&alerts, *e) > 0).then_some(alerts)
    })
    .await;
    for expected in pushed_expected {
        assert_eq!(entries(&pushed, expected), 1, "{expected:?} pushed by two replicas");
        let from_rule = from_rules.iter().find(|a| entries(std::slice::from_ref(a), expected) == 1).unwrap();
        let from_push = pushed.iter().find(|a| entries(std::slice::from_ref(a), expected) == 1).unwrap();
        assert_eq!(from_rule["labels"]["cluster"], "eu-1", "Prometheus's external_labels");
        assert_eq!(from_push["labels"], from_rule["labels"], "{expected:?}: pushed and rule alerts are one alert");
    }
    let open = pushed.iter().find(|a| a["labels"]["name"] == "open").unwrap();
    assert_eq!(open["labels"]["severity"], "critical");
    assert!(open["annotations"]["remediation"].as_str().unwrap().contains("--binary-authorization default"));
    assert_eq!(open["annotations"]["last_modifier"], "dev@example.com");
    assert!(!has_alert(&pushed, "BinauthzWorkloadBreakglass", "name", "accepted"), "suppressed: not pushed");

    // Every dashboard panel evaluates on this Prometheus and returns data.
    eventually("recording rules", Duration::from_secs(30), async || {
        let r = get_json(&format!("{prom}/api/v1/query?query=project_kind:binauthz_resources:count")).await?;
        (!r["data"]["result"].as_array()?.is_empty()).then_some(())
    })
    .await;
    // Rates need a few samples: retry until every panel has data, failing at once on an error.
    until_none("panels without data", Duration::from_secs(30), async || panels_without_data(&prom).await).await;
    // And every fleet panel shows for two replicas what it shows for one.
    until_none("panels where two replicas differ from one", Duration::from_secs(15), async || {
        panels_differing_from_one_replica(&prom).await
    })
    .await;

    // Fixing the workload resolves its pushed alert.
    h.fake.estate(|e| e.project("shop-prod").services[1] = service("shop-prod", REGION, "open"));
    eventually("the pushed alert to resolve", Duration::from_secs(30), async || {
        let alerts = active_alerts(am_push_port).await?;
        (!has_alert(&alerts, "BinauthzWorkloadBinauthzDisabled", "name", "open")
            && has_alert(&alerts, "BinauthzWorkloadBreakglass", "name", "glass"))
        .then_some(())
    })
    .await;
    for replica in &replicas {
        let metrics = replica.metrics().await;
        let pushed = format!(
            "binauthz_alertmanager_notifications_total{{alertmanager=\"http://127.0.0.1:{am_push_port}\",result=\"success\"}}"
        );
        assert!(sample(&metrics, &pushed).unwrap_or(0.0) >= 1.0, "{metrics}");
    }
}

/// Polls `problems` until it finds none, failing after `limit` with the last ones found.
async fn until_none(what: &str, limit: Duration, mut problems: impl AsyncFnMut() -> Vec<String>) {
    let deadline = Instant::now() + limit;
    loop {
        let found = problems().await;
        if found.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}:\n{}", found.join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The panels about the fleet (not the per-replica ones, which filter by `$instance`, nor
/// last-success ages, which differ by when each replica finished) whose value for job
/// `binauthz-auditor` (two replicas) differs from job `single` (one of them).
async fn panels_differing_from_one_replica(prom: &str) -> Vec<String> {
    let (mut differ, mut compared) = (Vec::new(), 0);
    for file in ["dashboards/binauthz-overview.json", "dashboards/binauthz-project.json"] {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (title, expr) in panel_queries(&dashboard) {
            if expr.contains("$instance") || expr.contains("_timestamp_seconds") {
                continue;
            }
            let [two, one] = ["binauthz-auditor", "single"].map(|job| substitute(&expr, job));
            let (two, one) = (instant_query(prom, &two).await, instant_query(prom, &one).await);
            compared += 1;
            if two != one {
                differ.push(format!("{file}: {title}: {expr}\n  two replicas: {two:?}\n  one replica: {one:?}"));
            }
        }
    }
    assert!(compared >= 30, "only {compared} fleet panels compared");
    differ
}

/// A panel query with the dashboards' variables set to "All" and `$job` to `job`.
fn substitute(expr: &str, job: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("${job}", job)
        .replace("$job", job)
        .replace("${project}", ".*")
        .replace("$project", ".*")
        .replace("${kind}", ".*")
        .replace("$kind", ".*")
        .replace("${cluster}", ".*")
        .replace("$cluster", ".*")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
}

/// An instant query's result: each series' labels (without job and instance) and value.
async fn instant_query(prom: &str, query: &str) -> std::collections::BTreeMap<String, String> {
    let answer = http_client()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", query)])
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(answer["status"], "success", "{query}: {answer}");
    let mut out = std::collections::BTreeMap::new();
    for series in answer["data"]["result"].as_array().into_iter().flatten() {
        let mut labels = series["metric"].as_object().cloned().unwrap_or_default();
        labels.remove("job");
        labels.remove("instance");
        out.insert(Value::Object(labels).to_string(), series["value"][1].as_str().unwrap_or("").to_owned());
    }
    out
}

/// Evaluates every panel query of every dashboard; returns those with no data.
async fn panels_without_data(prom: &str) -> Vec<String> {
    let mut empty = Vec::new();
    for file in ["dashboards/binauthz-overview.json", "dashboards/binauthz-project.json"] {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        for (title, expr) in panel_queries(&dashboard) {
            let query = substitute(&expr, "binauthz-auditor");
            if instant_query(prom, &query).await.is_empty() {
                empty.push(format!("{file}: {title}: {query}"));
            }
        }
    }
    empty
}

fn panel_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str().filter(|e| !e.trim().is_empty()) {
                    out.push((p["title"].as_str().unwrap_or("").to_owned(), expr.to_owned()));
                }
            }
            walk(p["panels"].as_array().map_or(&[][..], |v| v), out);
        }
    }
    let mut out = Vec::new();
    walk(dashboard["panels"].as_array().unwrap(), &mut out);
    assert!(out.len() > 10, "dashboards have panels");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_alertmanager_neither_blocks_nor_slows_the_audit() {
    let mut world = World::default();
    world.project("p").services = vec![set(service("p", REGION, "open"), "/binaryAuthorization", Value::Null)];
    let h = Harness::start(world).await;
    let port = free_port();
    let dead = free_port();
    let extra = format!(
        "[schedule]\ncron = \"* * * * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n\n[alertmanager]\nurls = [\"http://127.0.0.1:{dead}\"]\ntimeout = \"30s\"\n"
    );
    let config = h.write(&h.config(&["p"]).merge(&extra), "config.toml");
    let daemon = Daemon::start(&config).await;
    let started = Instant::now();
    let metrics = daemon.wait_for_cycles(3).await;
    assert!(started.elapsed() < Duration::from_secs(10), "cycles keep their pace");
    let counter = |result: &str| {
        format!(
            "binauthz_alertmanager_notifications_total{{alertmanager=\"http://127.0.0.1:{dead}\",result=\"{result}\"}}"
        )
    };
    assert!(sample(&metrics, &counter("failure")).unwrap_or(0.0) >= 1.0, "failed pushes are counted:\n{metrics}");
    assert_eq!(sample(&metrics, &counter("success")), Some(0.0), "every outcome from zero:\n{metrics}");
}
