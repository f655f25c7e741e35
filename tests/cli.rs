//! Command-line behaviour that needs no Google: config checking and the demo snapshot.

pub mod support;

use std::collections::BTreeSet;

use support::run::run_cli;

#[tokio::test]
async fn check_config_accepts_the_shipped_configs() {
    for config in ["config/demo.toml", "config/example.toml"] {
        let out = run_cli(&["check-config", "--config", config]).await;
        assert!(out.status.success(), "{config}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains(": ok ("));
    }
}

#[tokio::test]
async fn check_config_names_the_file_line_column_and_key_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[scope]\nprojects = [\"p\"]\n\n[rules]\nallow_breakglas = true\n").unwrap();
    let out = run_cli(&["check-config", "--config", path.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: {}:5:1: ", path.display())), "{stderr}");
    assert!(stderr.contains("allow_breakglas"), "{stderr}");
}

#[tokio::test]
async fn a_missing_credentials_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[scope]\nprojects = [\"p\"]\n[gcp]\ncredentials_file = \"nope.json\"\n").unwrap();
    for command in ["check-config", "audit"] {
        let out = run_cli(&[command, "--config", path.to_str().unwrap()]).await;
        assert_ne!(out.status.code(), Some(0));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(stderr.contains(&format!("credentials file {}", dir.path().join("nope.json").display())), "{stderr}");
    }
}

#[tokio::test]
async fn the_demo_snapshot_shows_every_reason_code_and_finding() {
    let out = run_cli(&["audit", "--config", "config/demo.toml", "--format", "json"]).await;
    assert_eq!(out.status.code(), Some(1), "complete, with violations");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["complete"], true);
    let reasons: BTreeSet<&str> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["violations"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()))
        .collect();
    let expected =
        ["allowlist_missing", "binauthz_disabled", "breakglass", "exempt_image", "gen1_function", "non_default_policy"];
    assert_eq!(reasons, expected.into_iter().collect());
    let findings: BTreeSet<&str> = report["projects"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["findings"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()))
        .collect();
    let expected = ["allowlist_too_broad", "policy_always_allow", "policy_api_disabled", "policy_dry_run"];
    assert_eq!(findings, expected.into_iter().collect());
    let shapes_read =
        report["resources"].as_array().unwrap().iter().filter(|r| r["project"] == "acme-analytics-dev").count();
    assert_eq!(shapes_read, 4, "the Knative (gcloud) shape and bare arrays are read too");
}

#[tokio::test]
async fn a_world_readable_key_is_refused_unless_allowed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.json");
    std::fs::write(&key, "{}").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[scope]\nprojects = [\"p\"]\n[gcp]\ncredentials_file = \"key.json\"\n").unwrap();

    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("is readable by every user (mode 644)"), "{stderr}");

    std::fs::write(&config, "[scope]\nprojects = [\"p\"]\n[gcp]\ncredentials_file = \"key.json\"\nallow_world_readable_credentials = true\n").unwrap();
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]).await;
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("key.json (gcp.credentials_file): type (missing): "),
        "the override lets the check go on: {stderr}"
    );
}

#[tokio::test]
async fn a_missing_snapshot_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[source]\nkind = \"snapshot\"\npath = \"gone\"\n").unwrap();
    for command in ["check-config", "audit"] {
        let out = run_cli(&[command, "--config", path.to_str().unwrap()]).await;
        assert_eq!(out.status.code(), Some(78), "{command}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.contains(&format!("source.path {}: no such file", dir.path().join("gone").display())),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn scope_projects_and_regions_narrow_a_snapshot_like_any_source() {
    let dir = tempfile::tempdir().unwrap();
    let demo = std::fs::canonicalize("config/demo").unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[source]\nkind = \"snapshot\"\npath = {:?}\n[scope]\nprojects = [\"acme-payments-prod\", \"acme-sandbox\"]\nregions = [\"us-central1\"]\n",
            demo.display()
        ),
    )
    .unwrap();
    let out = run_cli(&["audit", "--config", path.to_str().unwrap(), "--format", "json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let seen: BTreeSet<(&str, &str)> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["project"].as_str().unwrap(), r["location"].as_str().unwrap()))
        .collect();
    assert_eq!(seen, BTreeSet::from([("acme-payments-prod", "us-central1"), ("acme-sandbox", "us-central1")]));
}
