//! `tls_server_config` key by key, proven by real rustls handshakes in memory: the server
//! side is what `WebConfig::load` builds from the YAML, the client side a rustls client
//! offering exactly what each test needs.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CipherSuite, ClientConfig, NamedGroup, ProtocolVersion, RootCertStore};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::WebConfig;
use super::tests::load_in;

/// A CA with a server certificate for `localhost` and a client certificate (SAN
/// `prometheus`), and a client certificate from another CA, written into a folder.
struct Pki {
    dir: tempfile::TempDir,
    ca: String,
    server_cert: String,
    server_key: String,
    client: (String, String),
    stranger: (String, String),
}

fn issue(issuer: &CertifiedIssuer<'_, KeyPair>, san: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
    let mut params = CertificateParams::new(vec![san.to_string()]).unwrap();
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, issuer).unwrap().pem(), key.serialize_pem())
}

fn ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn pki() -> Pki {
    let (ours, theirs) = (ca(), ca());
    let (server_cert, server_key) = issue(&ours, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let pki = Pki {
        dir: tempfile::tempdir().unwrap(),
        ca: ours.pem(),
        server_cert,
        server_key,
        client: issue(&ours, "prometheus", ExtendedKeyUsagePurpose::ClientAuth),
        stranger: issue(&theirs, "prometheus", ExtendedKeyUsagePurpose::ClientAuth),
    };
    write(pki.dir.path(), "ca.crt", &pki.ca, 0o644);
    write(pki.dir.path(), "server.crt", &pki.server_cert, 0o644);
    write(pki.dir.path(), "server.key", &pki.server_key, 0o600);
    pki
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) {
    std::fs::write(dir.join(name), text).unwrap();
    std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
}

const FILES: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

impl Pki {
    fn load(&self, extra: &str) -> Result<WebConfig, String> {
        load_in(self.dir.path(), &format!("{FILES}{extra}"))
    }

    fn server(&self, extra: &str) -> Arc<rustls::ServerConfig> {
        self.load(extra).unwrap_or_else(|e| panic!("{extra}: {e}")).tls.expect("TLS is on")
    }
}

/// What a client offers: versions, suites, groups, and a certificate or none.
#[derive(Default)]
struct Client<'a> {
    versions: Option<&'a [&'static rustls::SupportedProtocolVersion]>,
    suites: Option<&'a [CipherSuite]>,
    groups: Option<&'a [NamedGroup]>,
    identity: Option<&'a (String, String)>,
}

type Negotiated = (ProtocolVersion, CipherSuite, NamedGroup);

impl Client<'_> {
    fn config(&self, pki: &Pki) -> ClientConfig {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(suites) = self.suites {
            provider.cipher_suites = suites
                .iter()
                .map(|want| *provider.cipher_suites.iter().find(|s| s.suite() == *want).expect("ring has it"))
                .collect();
        }
        if let Some(groups) = self.groups {
            provider.kx_groups.retain(|g| groups.contains(&g.name()));
        }
        let mut roots = RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(self.versions.unwrap_or(rustls::ALL_VERSIONS))
            .unwrap()
            .with_root_certificates(roots);
        match self.identity {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        }
    }

    /// One handshake against `server`: what was negotiated, or why either side gave up.
    async fn connect(&self, pki: &Pki, server: Arc<rustls::ServerConfig>) -> Result<Negotiated, String> {
        let (client_io, server_io) = tokio::io::duplex(64 * 1024);
        let connector = TlsConnector::from(Arc::new(self.config(pki)));
        let name = ServerName::try_from("localhost").unwrap();
        let accept = async move {
            let mut stream = TlsAcceptor::from(server).accept(server_io).await.map_err(|e| format!("server: {e}"))?;
            // TLS 1.3 settles client certificates after the client's Finished: read, so a
            // refusal reaches the client as an alert.
            let _ = tokio::io::AsyncWriteExt::shutdown(&mut stream).await;
            Ok::<_, String>(())
        };
        let connect = async move {
            let mut stream = connector.connect(name, client_io).await.map_err(|e| format!("client: {e}"))?;
            let mut buf = [0u8; 1];
            let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            let (_, conn) = stream.get_ref();
            let negotiated = (
                conn.protocol_version().unwrap(),
                conn.negotiated_cipher_suite().unwrap().suite(),
                conn.negotiated_key_exchange_group().unwrap().name(),
            );
            read.map_err(|e| format!("client: {e}"))?;
            Ok::<_, String>(negotiated)
        };
        let (accepted, connected) = tokio::join!(accept, connect);
        accepted?;
        connected
    }
}

fn no_cert() -> Client<'static> {
    Client::default()
}

#[tokio::test]
async fn every_client_auth_type_refuses_what_go_would_and_more() {
    let pki = pki();
    let ca = "  client_ca_file: ca.crt\n";
    for required in ["RequireAndVerifyClientCert", "RequireAnyClientCert", "RequireClientCert"] {
        let server = pki.server(&format!("  client_auth_type: {required}\n{ca}"));
        let none = no_cert().connect(&pki, Arc::clone(&server)).await;
        assert!(none.is_err(), "{required}: a client without a certificate must be refused, got {none:?}");
        let ours = Client { identity: Some(&pki.client), ..Client::default() };
        assert!(ours.connect(&pki, Arc::clone(&server)).await.is_ok(), "{required}: our client's certificate");
        let stranger = Client { identity: Some(&pki.stranger), ..Client::default() };
        assert!(stranger.connect(&pki, server).await.is_err(), "{required}: another CA's certificate");
    }
    for optional in ["VerifyClientCertIfGiven", "RequestClientCert"] {
        let server = pki.server(&format!("  client_auth_type: {optional}\n{ca}"));
        assert!(no_cert().connect(&pki, Arc::clone(&server)).await.is_ok(), "{optional}: no certificate is fine");
        let stranger = Client { identity: Some(&pki.stranger), ..Client::default() };
        assert!(stranger.connect(&pki, server).await.is_err(), "{optional}: a given certificate is verified");
    }
    let err = pki.load("  client_auth_type: RequireAnyClientCert\n").unwrap_err();
    assert!(err.ends_with("tls_server_config.client_auth_type RequireAnyClientCert needs client_ca_file or client_ca: client certificates are always verified here"), "{err}");
    let err = pki.load(ca).unwrap_err();
    assert!(err.contains("client CAs are configured but client_auth_type is NoClientCert"), "{err}");
    assert!(
        pki.load("  client_auth_type: RequireSomething\n").unwrap_err().contains("unknown value \"RequireSomething\"")
    );
}

#[tokio::test]
async fn client_allowed_sans_admit_only_listed_names() {
    let pki = pki();
    let require = "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n";
    let ours = Client { identity: Some(&pki.client), ..Client::default() };
    let listed = pki.server(&format!("{require}  client_allowed_sans: [grafana, prometheus]\n"));
    assert!(ours.connect(&pki, Arc::clone(&listed)).await.is_ok());
    assert!(no_cert().connect(&pki, listed).await.is_err());
    let unlisted = pki.server(&format!("{require}  client_allowed_sans: [grafana, prometheus.example.com]\n"));
    assert!(ours.connect(&pki, unlisted).await.is_err(), "a verified certificate without a listed SAN");
    let err = pki
        .load("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n  client_allowed_sans: [prometheus]\n")
        .unwrap_err();
    assert!(err.contains("client_allowed_sans needs a client_auth_type that requires a certificate"), "{err}");
    assert!(pki.load("  client_allowed_sans: [prometheus]\n").unwrap_err().contains("needs client_auth_type"));
}

#[tokio::test]
async fn inline_pem_works_like_files_and_an_inline_key_is_a_secret() {
    let pki = pki();
    let indent = |pem: &str| pem.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireAndVerifyClientCert\n",
        indent(&pki.server_cert),
        indent(&pki.server_key),
        indent(&pki.ca)
    );
    let path = pki.dir.path().join("web.yml");
    let err = load_in(pki.dir.path(), &inline).unwrap_err();
    assert!(
        err.contains("web config (it holds tls_server_config.key) DIR/web.yml: the file is readable by every user"),
        "{err}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let web = WebConfig::load(&path).unwrap();
    let ours = Client { identity: Some(&pki.client), ..Client::default() };
    assert!(ours.connect(&pki, Arc::clone(web.tls.as_ref().unwrap())).await.is_ok());
    assert!(no_cert().connect(&pki, web.tls.unwrap()).await.is_err(), "inline client_ca requires certificates");

    let both = format!("{FILES}  cert: |\n{}", indent(&pki.server_cert));
    assert!(load_in(pki.dir.path(), &both).unwrap_err().contains("cert and cert_file exclude each other"));
    let err = load_in(pki.dir.path(), "tls_server_config:\n  key_file: server.key\n").unwrap_err();
    assert!(err.ends_with("tls_server_config: missing one of cert or cert_file"), "{err}");
    let err = load_in(pki.dir.path(), "tls_server_config:\n  cert: not a pem\n  key_file: server.key\n").unwrap_err();
    assert!(err.ends_with("tls_server_config.cert: no certificate in it"), "{err}");
    let bad_key = "tls_server_config:\n  cert_file: server.crt\n  key: |\n    -----BEGIN PRIVATE KEY-----\n    c2VjcmV0\n    -----END PRIVATE KEY-----\n";
    std::fs::write(&path, bad_key).unwrap();
    let err = WebConfig::load(&path).unwrap_err();
    assert!(err.contains("certificate and key do not form a usable pair"), "{err}");
    assert!(!err.contains("c2VjcmV0"), "key material never in an error: {err}");
}

#[tokio::test]
async fn min_and_max_version_bound_the_handshake() {
    let pki = pki();
    let negotiated = |r: Result<Negotiated, String>| r.map(|n| n.0);
    assert_eq!(negotiated(no_cert().connect(&pki, pki.server("")).await), Ok(ProtocolVersion::TLSv1_3));
    let tls12_only = pki.server("  max_version: TLS12\n");
    assert_eq!(negotiated(no_cert().connect(&pki, Arc::clone(&tls12_only)).await), Ok(ProtocolVersion::TLSv1_2));
    let tls13_client = Client { versions: Some(&[&rustls::version::TLS13]), ..Client::default() };
    assert!(tls13_client.connect(&pki, tls12_only).await.is_err(), "max_version TLS12 refuses a TLS 1.3-only client");
    let tls12_client = Client { versions: Some(&[&rustls::version::TLS12]), ..Client::default() };
    assert!(tls12_client.connect(&pki, pki.server("  min_version: TLS13\n")).await.is_err());
    assert!(tls12_client.connect(&pki, pki.server("  min_version: TLS12\n  max_version: TLS13\n")).await.is_ok());

    let err = pki.load("  min_version: TLS10\n").unwrap_err();
    assert!(
        err.ends_with("tls_server_config.min_version: TLS10 is not supported (rustls implements TLS12 and TLS13 only)"),
        "{err}"
    );
    assert!(pki.load("  max_version: TLS11\n").unwrap_err().contains("max_version: TLS11 is not supported"));
    assert!(pki.load("  max_version: SSL3\n").unwrap_err().contains("unknown TLS version \"SSL3\""));
    let err = pki.load("  min_version: TLS13\n  max_version: TLS12\n").unwrap_err();
    assert!(err.ends_with("min_version TLS13 is above max_version TLS12"), "{err}");
}

#[tokio::test]
async fn cipher_suites_and_their_order_are_honoured_for_tls12() {
    use CipherSuite::{
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 as AES128, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 as AES256,
    };
    let pki = pki();
    let tls12 = Some(&[&rustls::version::TLS12][..]);
    let suites = "  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256]\n";
    let client_prefers_128 = Client { versions: tls12, suites: Some(&[AES128, AES256]), ..Client::default() };
    let suite = |r: Result<Negotiated, String>| r.map(|n| n.1);
    // prefer_server_cipher_suites defaults to true, as in exporter-toolkit.
    assert_eq!(suite(client_prefers_128.connect(&pki, pki.server(suites)).await), Ok(AES256));
    let client_order = pki.server(&format!("{suites}  prefer_server_cipher_suites: false\n"));
    assert_eq!(suite(client_prefers_128.connect(&pki, client_order).await), Ok(AES128));
    let only_256 = pki.server("  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n");
    let only_128_client = Client { versions: tls12, suites: Some(&[AES128]), ..Client::default() };
    assert!(only_128_client.connect(&pki, only_256).await.is_err(), "a suite left out is refused");
    // TLS 1.3 suites are not configurable, as in Go.
    let with_tls13 = pki.server("  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n");
    assert_eq!(suite(no_cert().connect(&pki, with_tls13).await), Ok(CipherSuite::TLS13_AES_256_GCM_SHA384));

    let err = pki.load("  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n").unwrap_err();
    assert!(err.contains("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA is not implemented by rustls (no CBC or RSA key exchange); TLS 1.2 suites offered: "), "{err}");
    assert!(pki.load("  cipher_suites: [TLS_NULL]\n").unwrap_err().contains("unknown cipher suite \"TLS_NULL\""));
    let err = pki.load("  cipher_suites: [TLS_AES_128_GCM_SHA256]\n").unwrap_err();
    assert!(err.contains("names no TLS 1.2 suite"), "{err}");
    assert!(pki.load("  min_version: TLS13\n  cipher_suites: [TLS_AES_128_GCM_SHA256]\n").is_ok());
}

#[tokio::test]
async fn curve_preferences_choose_the_key_exchange() {
    let pki = pki();
    let group = |r: Result<Negotiated, String>| r.map(|n| n.2);
    let p384 = pki.server("  curve_preferences: [CurveP384]\n");
    assert_eq!(group(no_cert().connect(&pki, Arc::clone(&p384)).await), Ok(NamedGroup::secp384r1));
    let x25519_only = Client { groups: Some(&[NamedGroup::X25519]), ..Client::default() };
    assert!(x25519_only.connect(&pki, p384).await.is_err(), "no common group");
    let err = pki.load("  curve_preferences: [CurveP521]\n").unwrap_err();
    assert!(err.contains("CurveP521 is not implemented by rustls with ring"), "{err}");
    assert!(pki.load("  curve_preferences: [P256]\n").unwrap_err().contains("unknown curve \"P256\""));
}
