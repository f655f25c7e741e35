//! The endpoint against hostile clients (issue 15, docs/security.md): the real binary on
//! loopback, every attack bounded in count and time. Timing and memory tests take turns
//! (`HEAVY`), so that they measure the daemon and not each other.

pub mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::config::TestConfig;
use support::fake_google::world::World;
use support::harness::Harness;
use support::pki::{Pki, https_client, make_pki, snapshot_config};
use support::resources::{enforcing_policy, service, set};
use support::run::{Daemon, free_port, run_cli, sample};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// The demo snapshot behind `web_yml`, with `server_extra` added to `[server]`.
fn demo_config(dir: &Path, port: u16, web_yml: &str, server_extra: &str) -> PathBuf {
    let path = snapshot_config(dir, port, web_yml);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, format!("{text}{server_extra}")).unwrap();
    path
}

/// Waits until the server closes `stream` (EOF or reset), reading and dropping what it sends.
async fn closed(stream: &mut TcpStream, within: Duration) -> Result<(), String> {
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return Err(format!("still open after {within:?}")),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(()),
            Ok(Ok(_)) => {}
        }
    }
}

/// One HTTP/1.1 exchange on `stream`, reading exactly the response (Content-Length).
async fn exchange(stream: &mut TcpStream, request: &str) -> (u16, Vec<u8>) {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "the response head ended early");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length: ").map(str::to_owned))
        .expect("a Content-Length")
        .parse()
        .unwrap();
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (head[9..12].parse().unwrap(), body)
}

async fn timed_get(http: &reqwest::Client, url: &str) -> (Duration, u16) {
    let started = Instant::now();
    let status = http.get(url).timeout(Duration::from_secs(15)).send().await.map_or(0, |r| r.status().as_u16());
    (started.elapsed(), status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_within_their_timeouts_while_scrapes_answer() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let limits = "header_read_timeout = \"1s\"\nidle_timeout = \"2s\"\nwrite_timeout = \"3s\"\n";
    let daemon = Daemon::start(&demo_config(dir.path(), port, "{}\n", limits)).await;
    let addr = format!("127.0.0.1:{port}");

    // 200 connections that never send a byte, 50 that send their headers a byte at a time.
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut slow = Vec::new();
    for _ in 0..50 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        slow.push(stream);
    }
    let dribbling = Arc::new(AtomicBool::new(true));
    let dribbler = {
        let dribbling = Arc::clone(&dribbling);
        tokio::spawn(async move {
            let mut open = slow.len();
            while dribbling.load(Ordering::Relaxed) && open > 0 {
                open = 0;
                for stream in &mut slow {
                    open += usize::from(stream.write_all(b"X").await.is_ok());
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            slow
        })
    };
    // A keep-alive connection that made one request and then waits.
    let mut keep_alive = TcpStream::connect(&addr).await.unwrap();
    let (status, _) = exchange(&mut keep_alive, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    let answered = Instant::now();

    // Scrapes keep answering meanwhile.
    let http = support::run::http_client();
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (took, status) = timed_get(&http, &format!("http://{addr}/metrics")).await;
        assert_eq!(status, 200);
        slowest = slowest.max(took);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(slowest < Duration::from_secs(1), "a scrape took {slowest:?} among hostile connections");

    // header_read_timeout (1s) from accept for the silent and the slow ones; a margin of 1.5s
    // for a shared machine.
    for stream in &mut silent {
        closed(stream, Duration::from_millis(2500).saturating_sub(started.elapsed())).await.unwrap();
    }
    let silent_closed = started.elapsed();
    dribbling.store(false, Ordering::Relaxed);
    let mut slow = dribbler.await.unwrap();
    for stream in &mut slow {
        closed(stream, Duration::from_millis(2500).saturating_sub(started.elapsed())).await.unwrap();
    }
    // idle_timeout (2s) after the response.
    closed(&mut keep_alive, Duration::from_millis(3500).saturating_sub(answered.elapsed())).await.unwrap();
    let idle_closed = answered.elapsed();
    assert!(idle_closed >= Duration::from_millis(1900), "closed after {idle_closed:?}, before idle_timeout");
    eprintln!(
        "figures: 250 silent/slow-header connections closed {silent_closed:?} after connecting (header_read_timeout 1s); keep-alive closed {idle_closed:?} after its response (idle_timeout 2s); slowest scrape meanwhile {slowest:?}"
    );
    assert_eq!(sample(&daemon.metrics().await, "binauthz_config_last_reload_successful"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_idle_connections_than_descriptors_leave_scrapes_and_the_audit_working() {
    let _turn = HEAVY.lock().await;
    let mut world = World::default();
    let p = world.project("p");
    p.policy = Some(enforcing_policy("p", &[]));
    p.services = (0..20).map(|i| service("p", "us-central1", &format!("svc-{i}"))).collect();
    let h = Harness::start(world).await;
    let port = free_port();
    // Idle connections are not timed out here: only the cap and its evictions protect scrapes.
    let extra = format!(
        "[schedule]\ncron = \"*/2 * * * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nheader_read_timeout = \"60s\"\nidle_timeout = \"60s\"\n"
    );
    let config = h.write(&h.config(&["p"]).merge(&extra), "config.toml");
    let log = h.path("daemon.log");
    let daemon = Daemon::start_under(&config, &["prlimit", "--nofile=256:256", "--"], Some(&log)).await;
    let cycles = |metrics: &str| sample(metrics, "binauthz_audit_cycles_total{result=\"success\"}").unwrap_or(0.0);
    let before = cycles(&daemon.wait_for_cycles(1).await);

    // 400 idle connections against 256 descriptors; the kernel's backlog holds the excess.
    let mut idle = Vec::new();
    for _ in 0..400 {
        idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    let http = support::run::http_client();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let (took, status) = timed_get(&http, &format!("{}/metrics", daemon.url)).await;
        assert_eq!(status, 200, "a scrape failed among {} idle connections", idle.len());
        slowest = slowest.max(took);
    }
    assert!(slowest < Duration::from_secs(2), "a scrape took {slowest:?}");
    // Two more audit cycles, each reading the fake Google over new outbound connections.
    let deadline = Instant::now() + Duration::from_secs(15);
    let metrics = loop {
        let metrics = daemon.metrics().await;
        if cycles(&metrics) >= before + 2.0 {
            break metrics;
        }
        assert!(Instant::now() < deadline, "the audit stalled under the idle connections:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&metrics, "binauthz_project_up{project=\"p\"}"), Some(1.0));
    drop(idle);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(log.contains("server.max_connections lowered"), "{log}");
    assert!(log.contains("connection limit reached"), "{log}");
    eprintln!(
        "figures: 400 idle connections, nofile 256: slowest of 5 scrapes {slowest:?}, audit cycles kept succeeding"
    );
}

/// A web config with one user whose hash has bcrypt's usual cost (10, as htpasswd -B makes).
fn basic_auth_web(password: &str) -> String {
    format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt::hash(password, 10).unwrap())
}

/// A client whose connections come from 127.0.0.2: its own address, as a scraper has.
fn client_from(ip: &str) -> reqwest::Client {
    support::run::install_crypto_provider();
    reqwest::Client::builder().local_address(ip.parse::<std::net::IpAddr>().unwrap()).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_flood_leaves_legitimate_logins_fast() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let daemon = Daemon::start(&demo_config(dir.path(), port, &basic_auth_web("scrape-me"), "")).await;
    let url = format!("http://127.0.0.1:{port}/metrics");

    // 256 attackers, each on its own connection, a new wrong password on every request. They
    // run on a thread of their own: on the test's runtime they would delay the legitimate
    // client's own task, and that is not the daemon's doing.
    let hammering = Arc::new(AtomicBool::new(true));
    // Attempts answered 401 (a password check, or a cached failure) and 429 (turned away).
    let attempts = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let attackers = {
        let (hammering, attempts, url) = (Arc::clone(&hammering), Arc::clone(&attempts), url.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                // One client: its pool opens a connection per attacker in flight.
                let http = reqwest::Client::new();
                let mut attackers = Vec::new();
                for a in 0..256 {
                    let (hammering, attempts, url) = (Arc::clone(&hammering), Arc::clone(&attempts), url.clone());
                    let http = http.clone();
                    attackers.push(tokio::spawn(async move {
                        let mut n = 0u64;
                        while hammering.load(Ordering::Relaxed) {
                            n += 1;
                            let guess = format!("guess-{a}-{n}");
                            let status = http.get(&url).basic_auth("prometheus", Some(guess)).send().await;
                            let slot = match status.map(|r| r.status().as_u16()) {
                                Ok(401) => 0,
                                Ok(429) => 1,
                                _ => 2,
                            };
                            attempts[slot].fetch_add(1, Ordering::Relaxed);
                        }
                    }));
                }
                for attacker in attackers {
                    attacker.await.unwrap();
                }
            })
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let legit = client_from("127.0.0.2");
    let login = || async {
        let started = Instant::now();
        let response = legit.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
        (started.elapsed(), response.status().as_u16())
    };
    let (fresh, status) = login().await;
    assert_eq!(status, 200);
    let mut cached = Vec::new();
    for _ in 0..5 {
        let (took, status) = login().await;
        assert_eq!(status, 200);
        cached.push(took);
    }
    hammering.store(false, Ordering::Relaxed);
    tokio::task::spawn_blocking(move || attackers.join().unwrap()).await.unwrap();
    cached.sort();
    let threads = std::fs::read_to_string(format!("/proc/{}/status", daemon.child.id().unwrap()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
        .unwrap();
    let [denied, turned_away, other] = attempts.as_ref().each_ref().map(|n| n.load(Ordering::Relaxed));
    eprintln!(
        "figures: 256 attackers ({denied} answered 401, {turned_away} answered 429, {other} otherwise): fresh login {fresh:?}, cached logins {cached:?}, daemon threads {threads}"
    );
    assert_eq!(other, 0, "every attempt is refused, none fails");
    assert!(fresh < Duration::from_secs(2), "a fresh login took {fresh:?} during the flood");
    assert!(cached[2] < Duration::from_millis(300), "cached logins took {cached:?} during the flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_take_as_long_as_known_ones() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _daemon = Daemon::start(&demo_config(dir.path(), port, &basic_auth_web("scrape-me"), "")).await;
    let http = support::run::http_client();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let median = |user: &'static str| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let mut times = Vec::new();
            for i in 0..5 {
                let started = Instant::now();
                let response = http.get(&url).basic_auth(user, Some(format!("never-{i}"))).send().await.unwrap();
                assert_eq!(response.status(), 401);
                times.push(started.elapsed());
            }
            times.sort();
            times[2]
        }
    };
    let known = median("prometheus").await;
    let unknown = median("mallory").await;
    let ratio = known.as_secs_f64().max(unknown.as_secs_f64()) / known.as_secs_f64().min(unknown.as_secs_f64());
    eprintln!("figures: wrong password for a known user {known:?}, unknown user {unknown:?} (medians of 5)");
    assert!(ratio < 3.0, "known {known:?} vs unknown {unknown:?}: timing tells which users exist");
}

/// Writes a snapshot of `projects` x `per_project` non-compliant services.
fn big_snapshot(dir: &Path, projects: usize, per_project: usize) -> PathBuf {
    let root = dir.join("estate");
    for p in 0..projects {
        let project = format!("estate-{p:03}");
        let folder = root.join(&project);
        std::fs::create_dir_all(&folder).unwrap();
        let services: Vec<Value> = (0..per_project)
            .map(|i| set(service(&project, "us-central1", &format!("svc-{i:05}")), "/binaryAuthorization", Value::Null))
            .collect();
        std::fs::write(folder.join("services.json"), json!({ "services": services }).to_string()).unwrap();
        std::fs::write(folder.join("policy.json"), enforcing_policy(&project, &[]).to_string()).unwrap();
        for empty in ["jobs.json", "worker_pools.json", "functions.json"] {
            std::fs::write(folder.join(empty), "{}").unwrap();
        }
    }
    root
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_clients_that_never_read_cost_one_rendering() {
    let _turn = HEAVY.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let estate = big_snapshot(dir.path(), 20, 1000);
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"snapshot\"\npath = {estate:?}\n\n[schedule]\ncron = \"0 0 * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\nwrite_timeout = \"6s\"\n"
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&config).await;
    daemon.wait_for_cycles(1).await;
    let report = daemon.get("/report").await.unwrap().bytes().await.unwrap();
    assert!(report.len() > 10_000_000, "a 20k-workload report, {} bytes", report.len());
    let (settled, _) = daemon.memory();
    let descriptors = daemon.descriptors();

    // 30 clients ask for the report and never read a byte of it.
    let started = Instant::now();
    let mut stalled = Vec::new();
    for _ in 0..30 {
        let socket = TcpSocket::new_v4().unwrap();
        // A small receive window: the server's side of the stall is what is measured.
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        stream.write_all(b"GET /report HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        stalled.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (held, peak) = daemon.memory();
    let (took, status) = timed_get(&support::run::http_client(), &format!("{}/metrics", daemon.url)).await;
    assert_eq!(status, 200);
    eprintln!(
        "figures: 20k workloads, report {} MB: RSS {} MB settled, {} MB with 30 stalled readers, peak {} MB; a scrape meanwhile {took:?}",
        report.len() / 1_000_000,
        settled / 1_000_000,
        held / 1_000_000,
        peak / 1_000_000
    );
    assert!(peak < 300_000_000, "peak RSS {peak} bytes");
    // write_timeout (6s) closes them; a margin of 2s. Seen from the daemon's descriptors:
    // reading them here would let the responses finish.
    assert!(daemon.descriptors() >= descriptors + 30, "the 30 connections are held meanwhile");
    until_within(
        "the stalled connections closed",
        Duration::from_secs(8).saturating_sub(started.elapsed()),
        async || daemon.descriptors() <= descriptors + 2,
    )
    .await;
    drop(stalled);
}

#[tokio::test]
async fn a_tls_key_other_users_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    let config = demo_config(
        dir.path(),
        free_port(),
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n",
        "",
    );
    let key = dir.path().join("server.key");
    let args = ["check-config", "--config", config.to_str().unwrap()];
    let check = || run_cli(&args);
    assert_eq!(check().await.status.code(), Some(0), "a 0600 key is fine");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = check().await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let expected = format!(
        "web.yml: tls_server_config.key_file {}: the file is readable by every user (mode 644) and holds a secret: chmod o-r it",
        key.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[tokio::test]
async fn alertmanager_urls_with_credentials_are_refused_without_echoing_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), free_port(), "{}\n", "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n[alertmanager]\nurls = [\"http://binauthz:hunter2@am:9093\"]\n")).unwrap();
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("alertmanager.urls") && stderr.contains("basic_auth_password_file"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

async fn until(what: &str, ok: impl AsyncFnMut() -> bool) {
    until_within(what, Duration::from_secs(10), ok).await;
}

async fn until_within(what: &str, within: Duration, mut ok: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_changes_the_listeners_security_or_fails_visibly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = demo_config(dir.path(), port, "{}\n", "");
    let log = dir.path().join("daemon.log");
    let daemon = Daemon::start_under(&config, &[], Some(&log)).await;
    let pki = make_pki(dir.path());
    let plain = support::run::http_client();
    let tls = https_client(&pki, false);
    let reloaded = |metrics: &str| sample(metrics, "binauthz_config_last_reload_successful");

    // plain -> TLS: served over TLS afterwards, and plain HTTP gets nothing.
    std::fs::write(dir.path().join("web.yml"), "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n")
        .unwrap();
    daemon.signal("HUP");
    let https = format!("https://127.0.0.1:{port}/metrics");
    until("HTTPS after plain -> TLS", async || tls.get(&https).send().await.is_ok()).await;
    let metrics = tls.get(&https).send().await.unwrap().text().await.unwrap();
    assert_eq!(reloaded(&metrics), Some(1.0));
    let cleartext = plain.get(format!("http://127.0.0.1:{port}/metrics")).send().await;
    assert!(cleartext.is_err() || cleartext.unwrap().status() != 200, "plain HTTP still served after TLS on");

    // TLS -> plain.
    std::fs::write(dir.path().join("web.yml"), "{}\n").unwrap();
    daemon.signal("HUP");
    until("plain HTTP after TLS -> plain", async || daemon.get("/healthz").await.is_ok()).await;
    assert!(tls.get(&https).send().await.is_err(), "TLS still served after TLS off");

    // A new address that cannot be bound: the reload fails, visibly, and nothing changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let original = TestConfig::load(&config);
    original.clone().set("server.listen", format!("127.0.0.1:{taken_port}")).write(&config);
    daemon.signal("HUP");
    until("the failed reload on /metrics", async || reloaded(&daemon.metrics().await) == Some(0.0)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines().any(|l| l.contains("configuration reload failed") && l.contains("cannot listen on")),
        "{text}"
    );

    // A new address that can be bound: served there, and no longer on the old one.
    let moved = free_port();
    original.set("server.listen", format!("127.0.0.1:{moved}")).write(&config);
    daemon.signal("HUP");
    let new_url = format!("http://127.0.0.1:{moved}/metrics");
    until("the new address", async || plain.get(&new_url).send().await.is_ok()).await;
    let metrics = plain.get(&new_url).send().await.unwrap().text().await.unwrap();
    assert_eq!(reloaded(&metrics), Some(1.0));
    until("the old address closed", async || daemon.get("/healthz").await.is_err()).await;
    drop(taken);

    // Basic auth added while plain: the very next request is checked.
    let web = format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt::hash("scrape-me", 4).unwrap());
    std::fs::write(dir.path().join("web.yml"), web).unwrap();
    daemon.signal("HUP");
    until("basic auth after adding users", async || plain.get(&new_url).send().await.is_ok_and(|r| r.status() == 401))
        .await;
    let metrics = plain.get(&new_url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
    assert_eq!(reloaded(&metrics.text().await.unwrap()), Some(1.0));
}

/// What a TLS server answers to an HTTP/2 preface sent without ALPN (`alpn` empty) or with it.
async fn tls_preface_answer(port: u16, pki: &Pki, alpn: &[&[u8]]) -> Vec<u8> {
    let mut tls = tls_connect(port, pki, alpn).await;
    tls.write_all(H2_PREFACE).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut answer)).await.unwrap().unwrap_or(0);
    answer.truncate(n);
    answer
}

async fn tls_connect(port: u16, pki: &Pki, alpn: &[&[u8]]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(pki.ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
}

/// Reads until the server closes the stream; how long that took.
async fn time_to_close(stream: &mut (impl tokio::io::AsyncRead + Unpin), within: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(within.saturating_sub(started.elapsed()), stream.read(&mut buf)).await {
            Err(_) => panic!("still open after {within:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => {}
        }
    }
}

/// An HTTP/2 server's first frame is SETTINGS (type 4); an HTTP/1 one answers "HTTP/1.1 ...".
fn is_http2(answer: &[u8]) -> bool {
    answer.len() >= 9 && answer[3] == 0x04 && !answer.starts_with(b"HTTP/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_only_where_configured_and_advertised() {
    // Plain port: no h2c, neither by preface nor through a client that insists.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _plain = Daemon::start(&demo_config(dir.path(), port, "{}\n", "")).await;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(H2_PREFACE).await.unwrap();
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer)).await.unwrap().unwrap_or(0);
    assert!(!is_http2(&answer[..n]), "h2c served on the plain port: {:?}", &answer[..n]);
    support::run::install_crypto_provider();
    let h2c = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    assert!(h2c.get(format!("http://127.0.0.1:{port}/metrics")).send().await.is_err(), "h2c answered");

    // TLS with the default: HTTP/2 through ALPN only.
    let tls_dir = tempfile::tempdir().unwrap();
    let pki = make_pki(tls_dir.path());
    let tls_port = free_port();
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";
    let client = https_client(&pki, false);
    let limits = "header_read_timeout = \"1s\"\nidle_timeout = \"2s\"\n";
    let _tls = support::pki::start(&demo_config(tls_dir.path(), tls_port, web, limits), tls_port, &client).await;
    let response = client.get(format!("https://127.0.0.1:{tls_port}/metrics")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(is_http2(&tls_preface_answer(tls_port, &pki, &[b"h2"]).await));
    let without_alpn = tls_preface_answer(tls_port, &pki, &[]).await;
    assert!(!is_http2(&without_alpn), "HTTP/2 without ALPN: {without_alpn:?}");

    // Timeouts hold over TLS and HTTP/2 too (header_read_timeout 1s, idle_timeout 2s, and a
    // margin of 1.5s): no handshake; a handshake and a preface but no request; a request,
    // then nothing.
    let mut silent = TcpStream::connect(("127.0.0.1", tls_port)).await.unwrap();
    let no_handshake = time_to_close(&mut silent, Duration::from_millis(2500)).await;
    let mut h2 = tls_connect(tls_port, &pki, &[b"h2"]).await;
    h2.write_all(H2_PREFACE).await.unwrap();
    let no_request = time_to_close(&mut h2, Duration::from_millis(2500)).await;
    let mut h2 = tls_connect(tls_port, &pki, &[b"h2"]).await;
    h2.write_all(H2_PREFACE).await.unwrap();
    // HEADERS, END_STREAM | END_HEADERS, stream 1: GET https / with :authority 127.0.0.1
    // (HPACK static-table indexes 2, 7, 4, then a literal for index 1).
    let mut headers = vec![0, 0, 14, 0x01, 0x05, 0, 0, 0, 1, 0x82, 0x87, 0x84, 0x41, 9];
    headers.extend_from_slice(b"127.0.0.1");
    h2.write_all(&headers).await.unwrap();
    let mut answered = Vec::new();
    let mut buf = [0u8; 4096];
    // The response: a HEADERS frame (type 1) for stream 1 after the server's SETTINGS.
    while !answered.windows(5).any(|w| w[3] == 0x01 && w[4] & 0x04 != 0) {
        let n = tokio::time::timeout(Duration::from_secs(2), h2.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "closed before answering");
        answered.extend_from_slice(&buf[..n]);
    }
    let idle = time_to_close(&mut h2, Duration::from_millis(3500)).await;
    eprintln!(
        "figures: TLS without handshake closed after {no_handshake:?}, HTTP/2 without request {no_request:?}, HTTP/2 idle {idle:?} after its response"
    );
    assert!(no_request >= Duration::from_millis(900) && idle >= Duration::from_millis(1500), "{no_request:?} {idle:?}");

    // http2: false is honoured.
    let off_dir = tempfile::tempdir().unwrap();
    let off_pki = make_pki(off_dir.path());
    let off_port = free_port();
    let off_client = https_client(&off_pki, false);
    let web_off = format!("{web}http_server_config:\n  http2: false\n");
    let _off = support::pki::start(&demo_config(off_dir.path(), off_port, &web_off, ""), off_port, &off_client).await;
    let response = off_client.get(format!("https://127.0.0.1:{off_port}/metrics")).send().await.unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_11);
    let offered = tls_preface_answer(off_port, &off_pki, &[b"h2", b"http/1.1"]).await;
    assert!(!is_http2(&offered), "HTTP/2 with http2: false: {offered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_any_client_cert_requires_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let port = free_port();
    let web = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: RequireAnyClientCert\n  client_ca_file: ca.crt\n";
    let with_cert = https_client(&pki, true);
    let _daemon = support::pki::start(&demo_config(dir.path(), port, web, ""), port, &with_cert).await;
    let url = format!("https://127.0.0.1:{port}/metrics");
    assert_eq!(with_cert.get(&url).send().await.unwrap().status(), 200);
    assert!(https_client(&pki, false).get(&url).send().await.is_err(), "a client without a certificate got in");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_basic_scheme_is_case_insensitive() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let web = format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt::hash("scrape-me", 4).unwrap());
    let _daemon = Daemon::start(&demo_config(dir.path(), port, &web, "")).await;
    let credentials = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "prometheus:scrape-me");
    for scheme in ["Basic", "BASIC", "basic", "bAsIc"] {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: {scheme} {credentials}\r\n\r\n");
        assert_eq!(exchange(&mut stream, &request).await.0, 200, "{scheme}");
    }
}

/// What held before the endpoint got its own accept loop still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_held_before_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let web = format!("basic_auth_users:\n  prometheus: '{}'\n", bcrypt::hash("scrape-me", 4).unwrap());
    let log = dir.path().join("daemon.log");
    let config = demo_config(dir.path(), port, &web, "");
    let credentials = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "prometheus:scrape-me");
    let wrong = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "prometheus:hunter2");
    let child = tokio::process::Command::new(support::run::BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "trace")
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let connect = async || loop {
        if let Ok(stream) = TcpStream::connect(("127.0.0.1", port)).await {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let auth = format!("Authorization: Basic {credentials}\r\n");

    // Pipelining: two requests in one write, two answers in order.
    let mut stream = connect().await;
    let one = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{auth}\r\n");
    stream.write_all(format!("{one}{one}").as_bytes()).await.unwrap();
    assert_eq!(exchange(&mut stream, "").await, (200, b"ok\n".to_vec()));
    assert_eq!(exchange(&mut stream, "").await, (200, b"ok\n".to_vec()));
    // A wrong password: 401, and neither password shows in the trace log below.
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {wrong}\r\n\r\n");
    assert_eq!(exchange(&mut stream, &request).await.0, 401);

    // Oversized headers: 431.
    let mut stream = connect().await;
    let big = format!("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    let _ = stream.write_all(big.as_bytes()).await;
    let mut answer = vec![0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 431");

    // A body nobody asked for is refused before it is sent.
    let mut stream = connect().await;
    let post = format!("POST /metrics HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000000000\r\n\r\n");
    stream.write_all(post.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut answer)).await.unwrap().unwrap();
    assert_eq!(&answer, b"HTTP/1.1 405");

    // A malformed request line: 400.
    let mut stream = connect().await;
    stream.write_all(b"GET /\x01 nonsense\r\n\r\n").await.unwrap();
    let mut answer = vec![0u8; 12];
    stream.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 400");

    drop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("DEBUG"), "the log is at trace level:\n{text}");
    for secret in ["scrape-me", "hunter2", credentials.as_str(), wrong.as_str()] {
        assert!(!text.contains(secret), "{secret} in the trace log");
    }
}

/// The attack run at full size, for docs/security.md (not part of the suite: it takes
/// minutes). `cargo test --test security -- --ignored --nocapture attack_run`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn attack_run() {
    let _turn = HEAVY.lock().await;
    let http = support::run::http_client();

    // 1,100 idle connections against the default soft limit of 1024 descriptors.
    {
        let mut world = World::default();
        let p = world.project("p");
        p.policy = Some(enforcing_policy("p", &[]));
        p.services = (0..20).map(|i| service("p", "us-central1", &format!("svc-{i}"))).collect();
        let h = Harness::start(world).await;
        let port = free_port();
        let extra = format!("[schedule]\ncron = \"*/5 * * * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n");
        let config = h.write(&h.config(&["p"]).merge(&extra), "config.toml");
        let daemon = Daemon::start_under(&config, &["prlimit", "--nofile=1024:1024", "--"], None).await;
        let cycles = |m: &str| sample(m, "binauthz_audit_cycles_total{result=\"success\"}").unwrap_or(0.0);
        let before = cycles(&daemon.wait_for_cycles(1).await);
        let mut idle = Vec::new();
        for _ in 0..1100 {
            idle.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        let mut scrapes = Vec::new();
        for _ in 0..10 {
            scrapes.push(timed_get(&http, &format!("{}/metrics", daemon.url)).await);
        }
        tokio::time::sleep(Duration::from_secs(11)).await;
        let metrics = daemon.metrics().await;
        eprintln!(
            "attack: 1,100 idle connections, nofile 1024: scrapes {scrapes:?}; audit cycles succeeded meanwhile: {}; project up: {:?}",
            cycles(&metrics) - before,
            sample(&metrics, "binauthz_project_up{project=\"p\"}")
        );
    }

    // 5,000 slow-header connections (one byte every 5 s) against the defaults.
    {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let daemon = Daemon::start(&demo_config(dir.path(), port, "{}\n", "")).await;
        let started = Instant::now();
        let mut slow = Vec::new();
        for _ in 0..5000 {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n").await;
            slow.push(stream);
        }
        let mut scrapes = Vec::new();
        for _ in 0..5 {
            scrapes.push(timed_get(&http, &format!("{}/metrics", daemon.url)).await);
        }
        let mut open = slow.len();
        for round in 0..3 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            open = 0;
            for stream in &mut slow {
                open += usize::from(stream.write_all(b"X").await.is_ok());
            }
            eprintln!(
                "attack: 5,000 slow connections: {open} still writable after {:?} (round {round})",
                started.elapsed()
            );
        }
        let mut still_open = 0;
        for stream in &mut slow {
            still_open += usize::from(closed(stream, Duration::from_millis(10)).await.is_err());
        }
        eprintln!(
            "attack: 5,000 slow connections: scrapes meanwhile {scrapes:?}; open after {:?}: {still_open} (daemon holds {} descriptors)",
            started.elapsed(),
            daemon.descriptors()
        );
        let _ = open;
    }

    // 256 attackers with wrong passwords; a fresh login after SIGHUP (cache emptied for the
    // changed hash) and cached ones; the daemon's threads and CPU.
    {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let daemon = Daemon::start(&demo_config(dir.path(), port, &basic_auth_web("scrape-me"), "")).await;
        let url = format!("http://127.0.0.1:{port}/metrics");
        let hammering = Arc::new(AtomicBool::new(true));
        let attackers = {
            let (hammering, url) = (Arc::clone(&hammering), url.clone());
            std::thread::spawn(move || {
                let runtime =
                    tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
                runtime.block_on(async move {
                    let http = reqwest::Client::new();
                    let mut attackers = Vec::new();
                    for a in 0..256 {
                        let (hammering, url, http) = (Arc::clone(&hammering), url.clone(), http.clone());
                        attackers.push(tokio::spawn(async move {
                            let mut n = 0u64;
                            while hammering.load(Ordering::Relaxed) {
                                n += 1;
                                let _ =
                                    http.get(&url).basic_auth("prometheus", Some(format!("g-{a}-{n}"))).send().await;
                            }
                        }));
                    }
                    for attacker in attackers {
                        attacker.await.unwrap();
                    }
                })
            })
        };
        let pid = daemon.child.id().unwrap();
        let cpu = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
            (fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()) as f64 / 100.0
        };
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (cpu0, t0) = (cpu(), Instant::now());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let cores = (cpu() - cpu0) / t0.elapsed().as_secs_f64();
        std::fs::write(dir.path().join("web.yml"), basic_auth_web("scrape-me")).unwrap();
        daemon.signal("HUP");
        tokio::time::sleep(Duration::from_secs(1)).await;
        let legit = client_from("127.0.0.2");
        let mut logins = Vec::new();
        for _ in 0..6 {
            let started = Instant::now();
            let status = legit.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap().status();
            logins.push((started.elapsed(), status.as_u16()));
        }
        let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().to_owned()))
            .unwrap();
        hammering.store(false, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || attackers.join().unwrap()).await.unwrap();
        eprintln!(
            "attack: 256 wrong-password attackers: daemon used {cores:.2} cores, {threads} threads; fresh login after SIGHUP then cached: {logins:?}"
        );
    }

    // 40 clients that never read /report on a 100k-workload estate.
    {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let estate = big_snapshot(dir.path(), 100, 1000);
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[source]\nkind = \"snapshot\"\npath = {estate:?}\n\n[schedule]\ncron = \"0 0 * * *\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n"
            ),
        )
        .unwrap();
        let daemon = Daemon::start(&config).await;
        let deadline = Instant::now() + Duration::from_secs(300);
        while !daemon.metrics().await.contains("binauthz_audit_cycles_total{result=\"success\"} 1") {
            assert!(Instant::now() < deadline, "no cycle in 300 s");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let (settled, _) = daemon.memory();
        let mut stalled = Vec::new();
        for _ in 0..40 {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            stream.write_all(b"GET /report HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
            stalled.push(stream);
        }
        tokio::time::sleep(Duration::from_secs(20)).await;
        let (held, peak) = daemon.memory();
        let report_size = daemon.get("/report").await.unwrap().bytes().await.unwrap().len();
        eprintln!(
            "attack: 100k workloads, report {} MB, 40 clients that never read: RSS {} MB before, {} MB with them, peak {} MB",
            report_size / 1_000_000,
            settled / 1_000_000,
            held / 1_000_000,
            peak / 1_000_000
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_config_headers_and_rate_limit_reach_every_response_and_follow_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hash = bcrypt::hash("scrape-me", 4).unwrap();
    let web = |frame: &str, limit: &str| {
        format!(
            "http_server_config:\n  headers:\n    X-Frame-Options: {frame}\n    Content-Security-Policy: \"default-src 'none'\"\nbasic_auth_users:\n  prometheus: '{hash}'\n{limit}"
        )
    };
    let config = demo_config(dir.path(), port, &web("deny", "rate_limit:\n  interval: 1h\n  burst: 4\n"), "");
    // Starting polls /healthz until it answers: one token of the four.
    let daemon = Daemon::start(&config).await;
    let http = support::run::http_client();
    let url = format!("http://127.0.0.1:{port}/metrics");

    let anonymous = http.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["x-frame-options"], "deny", "refusals carry the headers too");
    let scrape = http.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);
    assert_eq!(scrape.headers()["x-frame-options"], "deny");
    assert_eq!(scrape.headers()["content-security-policy"], "default-src 'none'");
    assert_eq!(scrape.headers()["content-type"], "text/plain; version=0.0.4; charset=utf-8", "not overridable");
    assert_eq!(http.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap().status(), 200);
    // The bucket is empty: the next request is refused before its password is checked.
    let limited = http.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "3600");
    assert_eq!(limited.headers()["x-frame-options"], "deny");

    // A reload applies new headers and lifts the limit in place.
    std::fs::write(dir.path().join("web.yml"), web("sameorigin", "")).unwrap();
    daemon.signal("HUP");
    until("the reloaded headers", async || {
        http.get(&url).send().await.is_ok_and(|r| r.headers()["x-frame-options"] == "sameorigin")
    })
    .await;
    for _ in 0..10 {
        let r = http.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
        assert_eq!(r.status(), 200, "no limit after the reload");
    }

    // A header exporter-toolkit does not allow is refused: the reload fails, visibly.
    std::fs::write(dir.path().join("web.yml"), "http_server_config:\n  headers:\n    Content-Type: text/html\n")
        .unwrap();
    daemon.signal("HUP");
    until("the failed reload", async || {
        let metrics = http.get(&url).basic_auth("prometheus", Some("scrape-me")).send().await.unwrap();
        sample(&metrics.text().await.unwrap(), "binauthz_config_last_reload_successful") == Some(0.0)
    })
    .await;
    let out = run_cli(&["check-config", "--config", config.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(78));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("web.yml: http_server_config.headers: \"Content-Type\" can not be configured"), "{stderr}");
}
