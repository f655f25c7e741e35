//! Builders for Google API resources in the shapes the APIs return (Run v2, Functions v2,
//! Binary Authorization v1). Start from a compliant resource and change what a test is about.

use serde_json::{Value, json};

/// Sets `pointer` (JSON pointer) in `v`, creating objects on the way; `Value::Null` removes.
pub fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let last = parts.pop().expect("a non-empty pointer");
    let mut node = &mut v;
    for part in parts {
        node = match node {
            Value::Array(items) => &mut items[part.parse::<usize>().expect("an array index")],
            other => other.as_object_mut().expect("an object").entry(part).or_insert_with(|| json!({})),
        };
    }
    let object = node.as_object_mut().expect("an object");
    if value.is_null() {
        object.remove(last);
    } else {
        object.insert(last.into(), value);
    }
    v
}

pub fn image(project: &str, region: &str, name: &str) -> String {
    format!("{region}-docker.pkg.dev/{project}/apps/{name}@sha256:{}", "a".repeat(64))
}

fn run_resource(project: &str, region: &str, collection: &str, name: &str) -> Value {
    json!({
        "name": format!("projects/{project}/locations/{region}/{collection}/{name}"),
        "uid": format!("{name}-0000"),
        "generation": "3",
        "creator": "ci@example.com",
        "lastModifier": "dev@example.com",
        "createTime": "2026-10-01T00:00:00.000000Z",
        "updateTime": "2026-11-01T00:00:00.000000Z",
        "launchStage": "GA",
        "binaryAuthorization": {"useDefault": true},
        "etag": "\"abc\"",
    })
}

/// A compliant Cloud Run service.
pub fn service(project: &str, region: &str, name: &str) -> Value {
    let mut s = run_resource(project, region, "services", name);
    s["ingress"] = json!("INGRESS_TRAFFIC_ALL");
    s["template"] = json!({
        "containers": [{"image": image(project, region, name), "ports": [{"containerPort": 8080, "name": "http1"}]}],
        "maxInstanceRequestConcurrency": 80,
        "executionEnvironment": "EXECUTION_ENVIRONMENT_GEN2",
    });
    s["uri"] = json!(format!("https://{name}-xyz-uc.a.run.app"));
    s
}

/// A compliant Cloud Run job.
pub fn job(project: &str, region: &str, name: &str) -> Value {
    let mut j = run_resource(project, region, "jobs", name);
    j["template"] =
        json!({"taskCount": 1, "template": {"containers": [{"image": image(project, region, name)}], "maxRetries": 3}});
    j
}

/// A compliant Cloud Run worker pool.
pub fn worker_pool(project: &str, region: &str, name: &str) -> Value {
    let mut w = run_resource(project, region, "workerPools", name);
    w["template"] = json!({"containers": [{"image": image(project, region, name)}]});
    w
}

/// A gen2 function deployed with `--binary-authorization default` (Functions v2 API).
pub fn function(project: &str, region: &str, name: &str) -> Value {
    json!({
        "name": format!("projects/{project}/locations/{region}/functions/{name}"),
        "environment": "GEN_2",
        "state": "ACTIVE",
        "updateTime": "2026-11-01T00:00:00Z",
        "buildConfig": {
            "runtime": "python312",
            "entryPoint": "main",
            "dockerRegistry": "ARTIFACT_REGISTRY",
            "dockerRepository": format!("projects/{project}/locations/{region}/repositories/gcf-artifacts"),
            "source": {"storageSource": {"bucket": format!("gcf-v2-sources-123456-{region}"), "object": format!("{name}/function-source.zip")}},
            "sourceProvenance": {"resolvedStorageSource": {"bucket": format!("gcf-v2-sources-123456-{region}"), "object": format!("{name}/function-source.zip"), "generation": "1730000000000000"}},
        },
        "serviceConfig": {
            "service": format!("projects/{project}/locations/{region}/services/{name}"),
            "binaryAuthorizationPolicy": "default",
            "availableMemory": "256M",
            "timeoutSeconds": 60,
        },
        "url": format!("https://{region}-{project}.cloudfunctions.net/{name}"),
    })
}

/// The Run service Cloud Functions creates behind a gen2 function.
pub fn backing_service(project: &str, region: &str, name: &str) -> Value {
    let s = service(project, region, name);
    let s = set(s, "/labels", json!({"goog-managed-by": "cloudfunctions"}));
    set(
        s,
        "/template/containers/0/image",
        json!(format!("{region}-docker.pkg.dev/{project}/gcf-artifacts/{name}:version_1")),
    )
}

/// An enforcing policy (attestations required, enforced) with these allowlist patterns.
pub fn enforcing_policy(project: &str, patterns: &[&str]) -> Value {
    json!({
        "name": format!("projects/{project}/policy"),
        "globalPolicyEvaluationMode": "ENABLE",
        "admissionWhitelistPatterns": patterns.iter().map(|p| json!({"namePattern": p})).collect::<Vec<_>>(),
        "defaultAdmissionRule": {
            "evaluationMode": "REQUIRE_ATTESTATION",
            "enforcementMode": "ENFORCED_BLOCK_AND_AUDIT_LOG",
            "requireAttestationsBy": [format!("projects/{project}/attestors/built-by-ci")],
        },
        "updateTime": "2026-10-01T00:00:00Z",
    })
}

/// The patterns a project needs for functions of both deploy paths in `region`.
pub fn function_patterns(project: &str, region: &str) -> Vec<String> {
    vec![
        format!("{region}-docker.pkg.dev/{project}/gcf-artifacts/**"),
        format!("{region}-docker.pkg.dev/{project}/cloud-run-source-deploy/**"),
    ]
}

/// An enforcing policy that exempts the build repositories of functions in `region`.
pub fn policy_exempting_functions(project: &str, region: &str) -> Value {
    let patterns = function_patterns(project, region);
    enforcing_policy(project, &patterns.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A 1st gen function as the Cloud Functions v2 API shows it (`environment: GEN_1`, eligible
/// for the upgrade to 2nd gen), deployed from a `.zip` in Cloud Storage.
pub fn gen1_function(project: &str, region: &str, name: &str) -> Value {
    let f = function(project, region, name);
    let f = set(set(f, "/environment", json!("GEN_1")), "/serviceConfig", json!({"availableMemory": "256M"}));
    let f = set(
        f,
        "/buildConfig/source",
        json!({"storageSource": {"bucket": format!("{project}-fn-sources"), "object": format!("{name}.zip")}}),
    );
    let f = set(f, "/buildConfig/sourceProvenance", Value::Null);
    set(f, "/upgradeInfo", json!({"upgradeState": "ELIGIBLE_FOR_2ND_GEN_UPGRADE"}))
}

/// An image of `project`'s `apps` repository by the digest `sha256:<64 × fill>`.
pub fn image_by_digest(project: &str, region: &str, name: &str, fill: char) -> String {
    format!("{region}-docker.pkg.dev/{project}/apps/{name}@sha256:{}", fill.to_string().repeat(64))
}

/// A Cloud Run revision as Run v1 lists it: immutable, with the digest its one container
/// was deployed with (`status.imageDigest`, a full reference as Google records it).
pub fn revision(project: &str, region: &str, service: &str, name: &str, image: &str) -> Value {
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": project,
            "labels": {"cloud.googleapis.com/location": region, "serving.knative.dev/service": service},
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {
            "imageDigest": image,
            "containerStatuses": [{"name": "app", "imageDigest": image}],
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

/// `service` serving `targets` (revision, percent, tag) as Run v2 reports it; the first
/// revision is the latest ready one.
pub fn serving(service: Value, targets: &[(&str, u32, Option<&str>)]) -> Value {
    let name = service["name"].as_str().unwrap_or_default().to_owned();
    let statuses: Vec<Value> = targets
        .iter()
        .map(|(revision, percent, tag)| {
            let mut t = json!({"type": "TRAFFIC_TARGET_ALLOCATION_TYPE_REVISION",
                               "revision": revision, "percent": percent});
            if let Some(tag) = tag {
                t["tag"] = json!(tag);
            }
            t
        })
        .collect();
    let latest = targets.first().map(|(r, _, _)| format!("{name}/revisions/{r}")).unwrap_or_default();
    set(set(service, "/trafficStatuses", json!(statuses)), "/latestReadyRevision", json!(latest))
}

/// A policy whose default rule requires attestations by `attestors`, with these exemptions.
pub fn attestation_policy(project: &str, attestors: &[&str], patterns: &[&str]) -> Value {
    set(enforcing_policy(project, patterns), "/defaultAdmissionRule/requireAttestationsBy", json!(attestors))
}

/// `pool` splitting its instances over `splits` (revision, percent) as Run v2 reports it; the
/// first revision is the latest ready one.
pub fn splitting(pool: Value, splits: &[(&str, u32)]) -> Value {
    let name = pool["name"].as_str().unwrap_or_default().to_owned();
    let statuses: Vec<Value> = splits
        .iter()
        .map(|(revision, percent)| {
            json!({"type": "INSTANCE_SPLIT_ALLOCATION_TYPE_REVISION", "revision": revision, "percent": percent})
        })
        .collect();
    let latest = splits.first().map(|(r, _)| format!("{name}/revisions/{r}")).unwrap_or_default();
    set(set(pool, "/instanceSplitStatuses", json!(statuses)), "/latestReadyRevision", json!(latest))
}
