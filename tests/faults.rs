//! Fault injection against the real binary: whatever Google does wrong to one project, the
//! other project is audited exactly right, the broken one is reported incomplete with an error
//! naming the endpoint, and nothing that could not be seen is reported compliant.
//! docs/reliability.md lists these cases.

pub mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::fake_google::closing_server;
use support::fake_google::world::{Api, Behaviour, Fault, World};
use support::harness::Harness;
use support::resources::*;
use support::run::{free_port, sample, series};

const REGION: &str = "us-central1";

fn seed(world: &mut World, id: &str) {
    let p = world.project(id);
    p.locations = vec![REGION.into()];
    p.policy = Some(policy_exempting_functions(id, REGION));
    p.services =
        vec![service(id, REGION, "good"), set(service(id, REGION, "bad"), "/binaryAuthorization", Value::Null)];
    p.functions = vec![function(id, REGION, "fn")];
}

fn google(code: u16, status: &str) -> Value {
    json!({"error": {"code": code, "message": format!("injected {status}"), "status": status}})
}

fn retry_info(delay: &str) -> Value {
    json!({"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "message": "Quota exceeded",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]}})
}

struct Case {
    name: &'static str,
    faults: Vec<Fault>,
    tweak: fn(&mut World),
    /// Config keys set for this case (dotted path, value), e.g. a shorter timeout.
    config: &'static [(&'static str, &'static str)],
    /// `None`: the victim's audit must be complete.
    victim_error: Option<&'static str>,
}

fn no_tweak(_: &mut World) {}

fn cases() -> Vec<Case> {
    let victim_services = "/v1/projects/victim/locations/-/services";
    vec![
        Case {
            name: "429 storm with RetryInfo, then recovery",
            faults: vec![Fault::status("/v1/projects/victim/policy", 429, retry_info("0.2s")).times(3)],
            tweak: no_tweak,
            config: &[],
            victim_error: None,
        },
        Case {
            name: "429 storm with Retry-After that never ends",
            faults: vec![
                Fault::status(victim_services, 429, google(429, "RESOURCE_EXHAUSTED")).header("retry-after", "0"),
            ],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("services: HTTP 429 RESOURCE_EXHAUSTED"),
        },
        Case {
            name: "a burst of 500, 502, 503 and 504",
            faults: vec![
                Fault::status("/v1/projects/victim/policy", 500, google(500, "INTERNAL")).times(1),
                Fault::raw(victim_services, 502, "<html>Bad Gateway</html>").times(1),
                Fault::status("/v2/projects/victim/locations/-/functions", 503, google(503, "UNAVAILABLE")).times(1),
                Fault::status("/namespaces/victim/jobs", 504, google(504, "DEADLINE_EXCEEDED")).times(1),
            ],
            tweak: no_tweak,
            config: &[],
            victim_error: None,
        },
        Case {
            name: "an HTML error page that persists",
            faults: vec![Fault::raw("/v2/projects/victim/locations/-/functions", 502, "<html><body>502</body></html>")],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("functions: HTTP 502: non-JSON error body: <html>"),
        },
        Case {
            name: "a request that hangs past the timeout",
            faults: vec![Fault::delay("/v1/projects/victim/policy", Duration::from_secs(5))],
            tweak: no_tweak,
            config: &[("gcp.request_timeout", "500ms"), ("gcp.max_retries", "1")],
            victim_error: Some("policy: no answer within 500ms"),
        },
        Case {
            name: "a body that trickles in slower than the timeout",
            faults: vec![
                Fault::raw(victim_services, 200, "{\"services\": []}                    ")
                    .trickle(Duration::from_millis(100)),
            ],
            tweak: no_tweak,
            config: &[("gcp.request_timeout", "500ms"), ("gcp.max_retries", "1")],
            victim_error: Some("services: no answer within 500ms"),
        },
        Case {
            name: "truncated JSON",
            faults: vec![Fault::raw(victim_services, 200, "{\"items\": [{\"metadata\": {\"name\": \"go")],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("services: unreadable response: EOF while parsing"),
        },
        Case {
            name: "wrong-typed JSON",
            faults: vec![Fault::raw(victim_services, 200, "{\"items\": {\"name\": 1}}")],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("services: unreadable response: invalid type"),
        },
        Case {
            name: "a 200 carrying an error body",
            faults: vec![Fault::status(victim_services, 200, google(500, "INTERNAL"))],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("services: HTTP 200 INTERNAL: injected INTERNAL"),
        },
        Case {
            name: "a nextPageToken that repeats forever",
            faults: vec![Fault::raw(victim_services, 200, "{\"items\": [], \"metadata\": {\"continue\": \"again\"}}")],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("repeated a page token"),
        },
        Case {
            name: "an enormous page",
            faults: vec![Fault::raw(victim_services, 200, &" ".repeat(65 << 20))],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("services: unreadable response: body larger than 64 MiB"),
        },
        Case {
            name: "unknown enum values and extra fields",
            faults: vec![],
            tweak: |w| {
                let p = w.project("victim");
                p.services[0] = set(p.services[0].clone(), "/launchStage", json!("HYPOTHETICAL"));
                p.services[0] = set(p.services[0].clone(), "/brandNewField", json!({"nested": [1, 2]}));
                p.functions[0] = set(p.functions[0].clone(), "/environment", json!("GEN_3"));
                let policy = p.policy.clone().unwrap();
                p.policy = Some(set(policy, "/globalPolicyEvaluationMode", json!("SOMETHING_NEW")));
            },
            config: &[],
            victim_error: None,
        },
        Case {
            name: "403 PERMISSION_DENIED on everything of one project",
            faults: vec![Fault::status("/projects/victim/", 403, google(403, "PERMISSION_DENIED"))],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("HTTP 403 PERMISSION_DENIED"),
        },
        Case {
            name: "SERVICE_DISABLED for the Functions API in one project",
            faults: vec![],
            tweak: |w| w.project("victim").disabled = vec![Api::Functions],
            config: &[],
            victim_error: None,
        },
        Case {
            name: "404 for a deleted project",
            faults: vec![Fault::status("/projects/victim/", 404, google(404, "NOT_FOUND"))],
            tweak: no_tweak,
            config: &[],
            victim_error: Some("HTTP 404 NOT_FOUND"),
        },
        Case {
            name: "regions the Functions API could not reach",
            faults: vec![],
            tweak: |w| w.project("victim").functions_unreachable = vec!["asia-east1".into()],
            config: &[],
            victim_error: Some("unreachable locations: asia-east1"),
        },
    ]
}

fn find<'a>(report: &'a Value, section: &str, project: &str, name: Option<&str>) -> Option<&'a Value> {
    report[section].as_array().unwrap().iter().find(|r| r["project"] == project && name.is_none_or(|n| r["name"] == n))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_leaves_the_other_project_right_and_never_invents_compliance() {
    let mut failures = Vec::new();
    for case in cases() {
        let mut world = World::default();
        seed(&mut world, "victim");
        seed(&mut world, "bystander");
        world.behaviour.faults = case.faults;
        (case.tweak)(&mut world);
        let h = Harness::start(world).await;
        let mut config = h.config(&["bystander", "victim"]);
        for (key, value) in case.config {
            config = match value.parse::<i64>() {
                Ok(n) => config.set(key, n),
                Err(_) => config.set(key, *value),
            };
        }

        let (code, report, stderr) = h.audit(&config).await;

        let mut problems = Vec::new();
        let expected_code = if case.victim_error.is_some() { 2 } else { 1 };
        if code != expected_code {
            problems.push(format!("exit {code}, expected {expected_code}"));
        }
        let bystander = find(&report, "projects", "bystander", None).unwrap();
        if bystander["ok"] != true {
            problems.push(format!("bystander not ok: {}", bystander["error"]));
        }
        let verdicts = |p: &str| {
            ["good", "bad", "fn"].map(|n| find(&report, "resources", p, Some(n)).map(|r| r["compliant"].clone()))
        };
        if verdicts("bystander") != [Some(json!(true)), Some(json!(false)), Some(json!(true))] {
            problems.push(format!("bystander verdicts changed: {:?}", verdicts("bystander")));
        }
        let victim = find(&report, "projects", "victim", None).unwrap();
        match case.victim_error {
            None if victim["ok"] != true => problems.push(format!("victim not ok: {}", victim["error"])),
            Some(needle) if !victim["error"].as_str().is_some_and(|e| e.contains(needle)) => {
                problems.push(format!("victim error {} does not contain {needle:?}", victim["error"]));
            }
            _ => {}
        }
        if verdicts("victim")[1] == Some(json!(true)) {
            problems.push("the non-compliant workload was reported compliant".into());
        }
        if !problems.is_empty() {
            failures.push(format!("{}: {}\nstderr: {stderr}", case.name, problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every project fails, naming the token endpoint's failure (`cause`), and nothing is reported.
async fn assert_token_failure(world: World, token_uri: Option<&str>, cause: &str) {
    let h = Harness::start(world).await;
    let config = h.config(&["bystander", "victim"]);
    if let Some(uri) = token_uri {
        let key_path = h.path("key.json");
        let mut key: Value = serde_json::from_str(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
        key["token_uri"] = json!(uri);
        std::fs::write(&key_path, key.to_string()).unwrap();
    }
    let (code, report, stderr) = h.audit(&config).await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(report["resources"], json!([]), "nothing unseen is reported");
    for p in report["projects"].as_array().unwrap() {
        assert_eq!(p["ok"], false);
        let error = p["error"].as_str().unwrap();
        assert!(error.contains("cannot get a Google access token") && error.contains(cause), "{cause:?} in {error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_faults_fail_the_audit_cleanly() {
    let mut world = World::default();
    seed(&mut world, "victim");
    seed(&mut world, "bystander");
    world.behaviour.faults = vec![Fault::status("/token", 500, json!({"error": "backend_error"}))];
    assert_token_failure(world, None, "/token: HTTP 500: backend_error").await;

    let mut world = World::default();
    seed(&mut world, "victim");
    world.behaviour.faults = vec![Fault::raw("/token", 200, "<html>captive portal</html>")];
    assert_token_failure(world, None, "/token: unreadable response").await;

    let mut world = World::default();
    seed(&mut world, "victim");
    let refused = format!("http://127.0.0.1:{}/token", free_port());
    assert_token_failure(world, Some(&refused), "Connection refused").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_expire_mid_cycle_are_renewed() {
    // gcp_auth renews 20 s before expiry: a 21 s token is renewed after about a second, and
    // the fake refuses it after 1.5 s, as if it had expired.
    let mut world = World::behaving(Behaviour {
        latency: Duration::from_millis(400),
        token_expires_in: Some(21),
        token_valid_for: Some(Duration::from_millis(1500)),
        ..Behaviour::default()
    });
    seed(&mut world, "victim");
    seed(&mut world, "bystander");
    let h = Harness::start(world).await;
    // One request at a time, so later requests queue long past the first token's life.
    let config = h.config(&["bystander", "victim"]).set("gcp.concurrency", 1);

    let (code, report, stderr) = h.audit(&config).await;

    assert_eq!(code, 1, "{stderr}\n{report:#}");
    assert_eq!(report["complete"], true);
    assert!(h.fake.seen(|s| s.tokens.len()) >= 2, "the token was renewed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_close_or_are_refused_are_transport_errors() {
    let (closing, _server) = closing_server().await;
    let refused = format!("http://127.0.0.1:{}", free_port());
    // The cause is named: the connection itself failed (not an HTTP status, not a body).
    for (endpoint, cause) in
        [(closing.as_str(), "connection closed before message completed"), (refused.as_str(), "Connection refused")]
    {
        let mut world = World::default();
        seed(&mut world, "victim");
        let h = Harness::start(world).await;
        let config = h.config(&["victim"]).set("gcp.endpoints.functions", endpoint);

        let (code, report, stderr) = h.audit(&config).await;

        assert_eq!(code, 2, "{stderr}");
        let victim = &report["projects"][0];
        let error = victim["error"].as_str().unwrap();
        assert!(error.starts_with("GET ") && error.contains("/functions: error sending request"), "{error}");
        assert!(error.contains(cause) && !error.contains("HTTP "), "{error}");
        assert_eq!(find(&report, "resources", "victim", Some("bad")).unwrap()["compliant"], false);

        // The class, as the daemon counts it: a transport error, retried like one (the first
        // attempt and max_retries = 3 more).
        let daemon = h.daemon(&config.in_process(true)).await;
        let metrics = daemon.wait_for_cycles(1).await;
        let transport = series("binauthz_api_requests_total", &[("api", "functions"), ("code", "transport")]);
        assert_eq!(sample(&metrics, &transport), Some(4.0), "{cause}: {metrics}");
        daemon.shutdown().await.unwrap();
    }
}
