//! Test certificates (a CA, a server certificate for 127.0.0.1, a client certificate) and
//! HTTPS clients and start-up for the daemon behind TLS.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};

pub struct Pki {
    pub ca_pem: String,
    pub client_identity_pem: String,
}

/// Writes a CA, a server certificate for 127.0.0.1 and a client certificate (SAN
/// `prometheus`; `client.crt`, `client.key`) into `dir`.
pub fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut server_params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server = server_params.signed_by(&server_key, &ca).unwrap();

    let mut client_params = CertificateParams::new(vec!["prometheus".to_string()]).unwrap();
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client = client_params.signed_by(&client_key, &ca).unwrap();

    std::fs::write(dir.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.crt"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    // A private key others can read is refused, like the Google credentials file.
    std::fs::set_permissions(dir.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("client.crt"), client.pem()).unwrap();
    std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
    std::fs::set_permissions(dir.join("client.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    Pki { ca_pem: ca.pem(), client_identity_pem: format!("{}{}", client.pem(), client_key.serialize_pem()) }
}

/// A config auditing the demo snapshot once a day, served on `port` with `web_yml` as its web config.
pub fn snapshot_config(dir: &Path, port: u16, web_yml: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("web.yml"), web_yml).unwrap();
    let demo = std::fs::canonicalize("config/demo").unwrap();
    let config = format!(
        "[source]\nkind = \"snapshot\"\npath = {demo:?}\n\n[schedule]\ncron = \"0 0 * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nweb_config = \"web.yml\"\n"
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, config).unwrap();
    path
}

pub fn https_client(pki: &Pki, with_identity: bool) -> reqwest::Client {
    super::run::install_crypto_provider();
    let mut builder =
        reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
    if with_identity {
        builder = builder.identity(reqwest::Identity::from_pem(pki.client_identity_pem.as_bytes()).unwrap());
    }
    builder.build().unwrap()
}

/// Starts the daemon and waits until its /healthz answers 200 over HTTPS (Daemon::start polls
/// plain HTTP).
pub async fn start(config: &Path, port: u16, client: &reqwest::Client) -> tokio::process::Child {
    let child = tokio::process::Command::new(super::run::BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if client.get(format!("https://127.0.0.1:{port}/healthz")).send().await.is_ok_and(|r| r.status() == 200) {
            return child;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no HTTPS answer from the daemon");
}
