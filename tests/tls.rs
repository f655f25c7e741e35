//! The metrics endpoint behind TLS, client certificates and basic auth (exporter-toolkit web
//! config), scraped by a real HTTPS client.

pub mod support;

use support::pki::{https_client, make_pki, snapshot_config, start};
use support::run::{Daemon, free_port, run_cli};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_over_tls_and_plain_http_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let config =
        snapshot_config(dir.path(), port, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let client = https_client(&pki, false);
    let _daemon = start(&config, port, &client).await;

    let response = client.get(format!("https://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.text().await.unwrap().contains("binauthz_build_info"));
    let plain = support::run::http_client().get(format!("http://127.0.0.1:{port}/metrics")).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != 200, "plain HTTP must not get metrics");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let config = snapshot_config(
        dir.path(),
        port,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n",
    );
    let with_cert = https_client(&pki, true);
    let _daemon = start(&config, port, &with_cert).await;

    let ok = with_cert.get(format!("https://127.0.0.1:{port}/metrics")).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    let without = https_client(&pki, false).get(format!("https://127.0.0.1:{port}/metrics")).send().await;
    assert!(without.is_err(), "a client without a certificate is refused at the handshake");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_guards_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hash = bcrypt::hash("scrape-me", 4).unwrap();
    let config = snapshot_config(dir.path(), port, &format!("basic_auth_users:\n  prometheus: '{hash}'\n"));

    // Daemon::start polls /healthz, which answers 401 here: that is an answer too.
    let daemon = Daemon::start(&config).await;
    let http = support::run::http_client();
    for path in ["/", "/metrics", "/report", "/healthz"] {
        let anonymous = http.get(format!("{}{path}", daemon.url)).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert_eq!(anonymous.headers()["www-authenticate"], "Basic realm=\"binauthz-auditor\"");
        let wrong =
            http.get(format!("{}{path}", daemon.url)).basic_auth("prometheus", Some("guess")).send().await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let right =
            http.get(format!("{}{path}", daemon.url)).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
        assert_eq!(right.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_bad_web_config_is_named_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let config =
        snapshot_config(dir.path(), 10293, "tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n");
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("web.yml: tls_server_config.cert_file:") && stderr.contains("missing.crt"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_the_server_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let old = make_pki(dir.path());
    let port = free_port();
    let config =
        snapshot_config(dir.path(), port, "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n");
    let trusts_old = https_client(&old, false);
    let daemon = start(&config, port, &trusts_old).await;

    // A new CA and certificate replace the files; existing handshakes are unaffected until HUP.
    let new = make_pki(dir.path());
    let trusts_new = https_client(&new, false);
    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-s", "HUP", &pid]).status().unwrap().success());

    let url = format!("https://127.0.0.1:{port}/healthz");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        // Fresh clients: no pooled connection may carry the old session over.
        let new_ok = https_client(&new, false).get(&url).send().await.is_ok();
        if new_ok {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the new certificate was not served after SIGHUP");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(trusts_new.get(&url).send().await.is_ok());
    assert!(https_client(&old, false).get(&url).send().await.is_err(), "the old certificate is retired");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_allowed_sans_pick_which_verified_clients_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let web = |sans: &str| {
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  client_allowed_sans: [{sans}]\n"
        )
    };
    // The test client certificate's SAN is `prometheus`.
    let config = snapshot_config(dir.path(), port, &web("grafana, prometheus"));
    let with_cert = https_client(&pki, true);
    let daemon = start(&config, port, &with_cert).await;
    let url = format!("https://127.0.0.1:{port}/healthz");
    assert_eq!(with_cert.get(&url).send().await.unwrap().status(), 200);
    assert!(https_client(&pki, false).get(&url).send().await.is_err(), "no certificate, no SAN");

    std::fs::write(dir.path().join("web.yml"), web("grafana")).unwrap();
    let pid = daemon.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-s", "HUP", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Fresh clients: a pooled connection would keep the session it was admitted with.
    while https_client(&pki, true).get(&url).send().await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "a certificate without a listed SAN still gets in after SIGHUP");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
