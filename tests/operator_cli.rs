//! The command line as operators and their platforms drive it: the listen address from a flag
//! or `$PORT` (Cloud Run), the web config flag, `--version`, Cloud Logging's JSON lines,
//! `audit --format json-lines` and `--exit-zero`. The real binary on the demo snapshot.

pub mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use support::run::{BIN, Daemon, free_port, run_cli, sample};
use tokio::process::Command;

/// The demo snapshot, listening on `listen`, written as `dir/config.toml`.
fn demo_config(dir: &Path, listen: &str) -> PathBuf {
    let demo = std::fs::canonicalize("config/demo").unwrap();
    let path = dir.join("config.toml");
    let text = format!(
        "[source]\nkind = \"snapshot\"\npath = {demo:?}\n[schedule]\ncron = \"0 0 * * *\"\n[server]\nlisten = \"{listen}\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("PORT")
        .env_remove("K_SERVICE")
        .env_remove("CLOUD_RUN_JOB")
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap()
}

fn json_lines(bytes: &[u8]) -> Vec<Value> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"))).collect()
}

#[tokio::test]
async fn version_names_the_release_the_commit_and_the_compiler() {
    let out = run_cli(&["--version"]).await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], format!("binauthz-auditor {}", env!("CARGO_PKG_VERSION")));
    let revision = lines[1].strip_prefix("revision: ").unwrap_or_else(|| panic!("{text}"));
    // The commit checked out where git can tell (a clone); `unknown` in a tree without one.
    let head = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok();
    match head.filter(|o| o.status.success()) {
        Some(head) if std::env::var_os("BINAUTHZ_REVISION").is_none() => {
            assert_eq!(revision, String::from_utf8(head.stdout).unwrap().trim());
        }
        _ => assert!(!revision.is_empty()),
    }
    assert!(lines[2].starts_with("rustc: rustc 1."), "{text}");
}

#[tokio::test]
async fn the_listen_flag_wins_over_port_and_the_file_and_survives_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let config = demo_config(dir.path(), &format!("127.0.0.1:{file_port}"));
    let log = dir.path().join("log");
    let flag = format!("127.0.0.1:{flag_port}");
    let env_port_text = env_port.to_string();
    let daemon =
        Daemon::start_at(&config, &["--web.listen-address", &flag], &[("PORT", env_port_text.as_str())], &log, &flag)
            .await;
    daemon.wait_for_cycles(1).await;
    let refused = |port: u16| std::net::TcpStream::connect(("127.0.0.1", port)).is_err();
    assert!(refused(file_port) && refused(env_port), "only the flag's address is served");

    // A reload reads the file again; the flag still decides where it listens.
    daemon.signal("HUP");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log).unwrap().contains("configuration reloaded") {
        assert!(std::time::Instant::now() < deadline, "no reload: {}", std::fs::read_to_string(&log).unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let metrics = daemon.metrics().await;
    assert_eq!(sample(&metrics, "binauthz_config_last_reload_successful"), Some(1.0));
    assert!(refused(file_port), "the reload did not move the listener to the file's address");
}

#[tokio::test]
async fn port_is_served_on_every_ipv4_address_when_no_flag_says_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port) = (free_port(), free_port());
    let config = demo_config(dir.path(), &format!("127.0.0.1:{file_port}"));
    let log = dir.path().join("log");
    let port = env_port.to_string();
    let daemon =
        Daemon::start_at(&config, &[], &[("PORT", port.as_str())], &log, &format!("127.0.0.1:{env_port}")).await;
    assert_eq!(daemon.get("/healthz").await.unwrap().status(), 200);
    assert!(std::fs::read_to_string(&log).unwrap().contains(&format!("listen=http://0.0.0.0:{env_port}")));
    assert!(std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err());
}

#[tokio::test]
async fn a_bad_listen_address_or_port_is_a_one_line_error() {
    let out = run_with_env(&["run", "--config", "config/demo.toml"], &[("PORT", "eighty")]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("$PORT: \"eighty\" is not a port number"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = run_with_env(&["run", "--config", "config/demo.toml", "--web.listen-address", "localhost:1"], &[]).await;
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("--web.listen-address") && stderr.contains("\"localhost:1\""), "{stderr}");
}

#[tokio::test]
async fn the_web_config_flag_replaces_the_files_setting() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = demo_config(dir.path(), &format!("127.0.0.1:{port}"));
    let web = dir.path().join("web.yml");
    // bcrypt cost 4: the lowest, this test is about which file is read, not about bcrypt.
    let hash = bcrypt::hash("scrape-me", 4).unwrap();
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let log = dir.path().join("log");
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start_at(&config, &["--web.config.file", web.to_str().unwrap()], &[], &log, &listen).await;
    assert_eq!(daemon.get("/metrics").await.unwrap().status(), 401);
    let authed = reqwest::Client::new()
        .get(format!("{}/metrics", daemon.url))
        .basic_auth("prometheus", Some("scrape-me"))
        .send()
        .await
        .unwrap();
    assert_eq!(authed.status(), 200);

    let missing = dir.path().join("missing.yml");
    let out = run_with_env(
        &["run", "--config", config.to_str().unwrap(), "--web.config.file", missing.to_str().unwrap()],
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8(out.stderr).unwrap().contains(&missing.display().to_string()));
}

#[tokio::test]
async fn on_cloud_run_every_log_line_is_a_cloud_logging_entry() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = demo_config(dir.path(), &format!("127.0.0.1:{port}"));
    let log = dir.path().join("log");
    let daemon = Daemon::start_at(&config, &[], &[("K_SERVICE", "auditor")], &log, &format!("127.0.0.1:{port}")).await;
    daemon.wait_for_cycles(1).await;
    drop(daemon);
    let lines = json_lines(&std::fs::read(&log).unwrap());
    let started = lines.iter().find(|l| l["message"] == "binauthz-auditor started").expect("a start line");
    assert_eq!(started["severity"], "INFO");
    assert!(started["logging.googleapis.com/sourceLocation"]["file"].as_str().unwrap().ends_with(".rs"));
    assert!(lines.iter().all(|l| l["severity"].is_string() && l["time"].is_string()), "{lines:?}");

    // A job's fatal error is an ERROR entry too, not a bare text line.
    let out = run_with_env(&["audit", "--config", "/nonexistent.toml"], &[("CLOUD_RUN_JOB", "audit")]).await;
    assert_eq!(out.status.code(), Some(78));
    let lines = json_lines(&out.stderr);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["severity"], "ERROR");
    assert!(lines[0]["message"].as_str().unwrap().starts_with("/nonexistent.toml: cannot read config"));

    // Elsewhere `auto` stays human, and an explicit format wins over Cloud Run's variables.
    let out = run_with_env(&["audit", "--config", "/nonexistent.toml"], &[]).await;
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("error: /nonexistent.toml"));
    let out =
        run_with_env(&["audit", "--config", "/nonexistent.toml", "--log-format", "plain"], &[("K_SERVICE", "x")]).await;
    assert!(String::from_utf8(out.stderr).unwrap().starts_with("error: /nonexistent.toml"));
}

#[tokio::test]
async fn json_lines_holds_the_whole_report_one_record_a_line() {
    let out = run_cli(&["audit", "--config", "config/demo.toml", "--format", "json"]).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = run_cli(&["audit", "--config", "config/demo.toml", "--format", "json-lines"]).await;
    assert_eq!(out.status.code(), Some(1), "complete, with violations");
    let lines = json_lines(&out.stdout);
    let of = |record: &str| lines.iter().filter(|l| l["record"] == record).collect::<Vec<_>>();
    let resources = of("resource");
    assert_eq!(resources.len(), report["resources"].as_array().unwrap().len());
    assert_eq!(of("project").len(), report["projects"].as_array().unwrap().len());
    assert_eq!(of("suppression").len(), report["suppressions"].as_array().unwrap().len());
    // Each resource line is that resource's report entry, plus record, severity and message.
    for (line, entry) in resources.iter().zip(report["resources"].as_array().unwrap()) {
        let mut trimmed = line.as_object().unwrap().clone();
        for key in ["record", "severity", "message"] {
            trimmed.remove(key);
        }
        assert_eq!(&Value::Object(trimmed), entry);
        let open = entry["violations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| !entry["suppressed"].as_array().unwrap().contains(v));
        assert_eq!(line["severity"], if open { "WARNING" } else { "INFO" }, "{line}");
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["record"], "summary");
    assert_eq!(summary["summary"], report["summary"]);
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["severity"], "WARNING");
}

#[tokio::test]
async fn exit_zero_turns_violations_into_success_but_not_an_incomplete_audit() {
    let out = run_cli(&["audit", "--config", "config/demo.toml", "--exit-zero", "--format", "json-lines"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json_lines(&out.stdout).last().unwrap()["exit_code"], 0);

    // A project whose services could not be read: incomplete, exit 2 with or without the flag.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("demo");
    std::fs::create_dir(&copy).unwrap();
    for project in std::fs::read_dir("config/demo").unwrap() {
        let project = project.unwrap().path();
        let to = copy.join(project.file_name().unwrap());
        std::fs::create_dir(&to).unwrap();
        for file in std::fs::read_dir(&project).unwrap() {
            let file = file.unwrap().path();
            std::fs::copy(&file, to.join(file.file_name().unwrap())).unwrap();
        }
    }
    let denied = r#"{"error": {"code": 403, "message": "Permission denied", "status": "PERMISSION_DENIED"}}"#;
    std::fs::write(copy.join("acme-sandbox/services.json"), denied).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "[source]\nkind = \"snapshot\"\npath = \"demo\"\n").unwrap();
    let out = run_cli(&["audit", "--config", config.to_str().unwrap(), "--exit-zero"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));

    let out = run_cli(&["audit", "--config", "config/demo.toml", "--exit-zero", "--fail-on-findings"]).await;
    assert_eq!(out.status.code(), Some(2), "the two flags contradict each other: a usage error");
}
