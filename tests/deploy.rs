//! deploy/kubernetes/ as far as no bundled schema reaches (scripts/check-kubernetes runs
//! kubernetes-validate on the core objects and promtool on the rule groups): the rule objects
//! hold exactly config/prometheus/'s groups, the objects refer to each other by names, labels
//! and ports that exist, the pod is locked down, and the ConfigMap's config is one the
//! auditor accepts once its placeholder is filled in (and refuses before).

pub mod support;

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};
use support::run::run_cli;

const DIR: &str = "deploy/kubernetes";
const PORT: u64 = 10293;

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(Path::new(DIR).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn source_groups(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(file).unwrap();
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
    doc["groups"].as_sequence().unwrap_or_else(|| panic!("{file}: no groups")).clone()
}

fn all_source_groups() -> Vec<Value> {
    [source_groups("config/prometheus/rules.yml"), source_groups("config/prometheus/alerts.yml")].concat()
}

fn str_of<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str().unwrap_or_else(|| panic!("{what}: not a string: {v:?}"))
}

/// The pod template's labels are what `selector` (a matchLabels mapping) selects.
fn selects(selector: &Value, labels: &Value, what: &str) {
    let selector = selector.as_mapping().unwrap_or_else(|| panic!("{what}: no selector"));
    assert!(!selector.is_empty(), "{what}: an empty selector selects everything");
    for (k, v) in selector {
        assert_eq!(labels.get(k), Some(v), "{what}: selects {k:?}={v:?}, which the pod labels {labels:?} lack");
    }
}

#[test]
fn the_prometheus_rule_holds_exactly_the_rule_files_groups() {
    let rule = load("prometheus-operator/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["spec"]["groups"].as_sequence().unwrap(), &all_source_groups());
}

#[test]
fn the_managed_prometheus_rules_hold_the_same_groups_each_with_an_interval() {
    let rules = load("gmp/rules.yaml");
    assert_eq!(rules["apiVersion"], "monitoring.googleapis.com/v1");
    assert_eq!(rules["kind"], "Rules");
    // The same groups, with the interval Prometheus would use by default where none is set.
    let expected: Vec<Value> = all_source_groups()
        .into_iter()
        .map(|mut group| {
            let map = group.as_mapping_mut().unwrap();
            if !map.contains_key("interval") {
                let mut with = Mapping::new();
                for (k, v) in map.iter() {
                    with.insert(k.clone(), v.clone());
                    if k == "name" {
                        with.insert("interval".into(), "1m".into());
                    }
                }
                *map = with;
            }
            group
        })
        .collect();
    assert_eq!(rules["spec"]["groups"].as_sequence().unwrap(), &expected);
}

#[test]
fn the_objects_refer_to_each_other_by_names_labels_and_ports_that_exist() {
    let deployment = load("deployment.yaml");
    let service = load("service.yaml");
    let account = load("serviceaccount.yaml");
    let config_map = load("configmap.yaml");
    let pod = &deployment["spec"]["template"];
    let pod_labels = &pod["metadata"]["labels"];
    selects(&deployment["spec"]["selector"]["matchLabels"], pod_labels, "Deployment");
    selects(&service["spec"]["selector"], pod_labels, "Service");

    let containers = pod["spec"]["containers"].as_sequence().unwrap();
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let port =
        container["ports"].as_sequence().unwrap().iter().find(|p| p["name"] == "metrics").expect("a metrics port");
    assert_eq!(port["containerPort"].as_u64(), Some(PORT));
    let service_port = &service["spec"]["ports"][0];
    assert_eq!((service_port["port"].as_u64(), &service_port["targetPort"]), (Some(PORT), &Value::from("metrics")));

    assert_eq!(pod["spec"]["serviceAccountName"], account["metadata"]["name"]);
    let gsa = str_of(&account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"], "Workload Identity");
    assert!(gsa.ends_with(".iam.gserviceaccount.com"), "{gsa}");

    // The config file the daemon reads is the ConfigMap's key, where the volume mounts it.
    let args: Vec<&str> = container["args"].as_sequence().unwrap().iter().map(|a| str_of(a, "args")).collect();
    let config = args.iter().position(|a| *a == "--config").map(|i| args[i + 1]).expect("--config");
    let volume = &pod["spec"]["volumes"][0];
    assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    let mount = container["volumeMounts"].as_sequence().unwrap().iter().find(|m| m["name"] == volume["name"]).unwrap();
    let key = config.strip_prefix(&format!("{}/", str_of(&mount["mountPath"], "mountPath"))).expect("under the mount");
    assert!(config_map["data"].get(key).is_some(), "the ConfigMap has no {key}");

    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["path"], "/healthz", "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "metrics", "{probe}");
    }

    let monitor = load("prometheus-operator/servicemonitor.yaml");
    selects(&monitor["spec"]["selector"]["matchLabels"], &service["metadata"]["labels"], "ServiceMonitor");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service_port["name"]);
    let pod_monitoring = load("gmp/podmonitoring.yaml");
    selects(&pod_monitoring["spec"]["selector"]["matchLabels"], pod_labels, "PodMonitoring");
    assert_eq!(pod_monitoring["spec"]["endpoints"][0]["port"], port["name"]);
    // The job label: the Service's name (ServiceMonitor) or the PodMonitoring's, which the
    // alerts on `up{job="binauthz-auditor"}` expect.
    assert_eq!(service["metadata"]["name"], "binauthz-auditor");
    assert_eq!(pod_monitoring["metadata"]["name"], "binauthz-auditor");
    assert!(std::fs::read_to_string("config/prometheus/alerts.yml").unwrap().contains("up{job=\"binauthz-auditor\"}"));
}

#[test]
fn the_pod_runs_as_the_images_non_root_user_with_nothing_to_spare() {
    let deployment = load("deployment.yaml");
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    // The Containerfile's USER, numeric.
    let containerfile = std::fs::read_to_string("Containerfile").unwrap();
    let user = containerfile.lines().find_map(|l| l.strip_prefix("USER ")).expect("USER in Containerfile");
    assert_eq!(
        user,
        format!(
            "{}:{}",
            pod["securityContext"]["runAsUser"].as_u64().unwrap(),
            pod["securityContext"]["runAsGroup"].as_u64().unwrap()
        )
    );
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], Value::from(vec!["ALL"]));
    assert!(security["capabilities"].get("add").is_none());
    let resources = &container["resources"];
    for (kind, what) in [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")] {
        assert!(resources[kind][what].is_string(), "resources.{kind}.{what}");
    }
    let namespace = load("namespace.yaml");
    assert_eq!(namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted");
}

#[test]
fn every_kustomization_lists_files_that_exist_and_every_manifest_is_listed() {
    let mut listed = Vec::new();
    for dir in [".", "prometheus-operator", "gmp"] {
        let kustomization = load(&format!("{dir}/kustomization.yaml"));
        assert_eq!(kustomization["namespace"], "binauthz-auditor", "{dir}");
        for resource in kustomization["resources"].as_sequence().unwrap() {
            let path = Path::new(DIR).join(dir).join(str_of(resource, "resource"));
            assert!(path.exists(), "{dir}/kustomization.yaml lists {path:?}, which does not exist");
            listed.push(std::fs::canonicalize(path).unwrap());
        }
    }
    for dir in [".", "prometheus-operator", "gmp"] {
        for entry in std::fs::read_dir(Path::new(DIR).join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            if name.ends_with(".yaml") && name != "kustomization.yaml" {
                assert!(listed.contains(&std::fs::canonicalize(&path).unwrap()), "{path:?} is in no kustomization");
            }
        }
    }
}

#[tokio::test]
async fn the_config_map_config_is_refused_until_its_placeholder_is_filled_in() {
    let config_map = load("configmap.yaml");
    let text = str_of(&config_map["data"]["config.toml"], "config.toml");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    let path_text = path.to_str().unwrap();

    std::fs::write(&path, text).unwrap();
    let out = run_cli(&["check-config", "--config", path_text]).await;
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("folders/FOLDER_ID"));

    std::fs::write(&path, text.replace("folders/FOLDER_ID", "folders/123456789012")).unwrap();
    let out = run_cli(&["check-config", "--config", path_text]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(&format!("listen 0.0.0.0:{PORT}")), "{stdout}");
}
