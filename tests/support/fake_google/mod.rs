//! An in-process fake of the Google APIs the auditor reads, speaking real HTTP with Google's
//! pagination and `google.rpc.Status` error bodies (`reads`):
//!
//! - Cloud Run v1: locations, and the Knative lists (services across regions, jobs, worker
//!   pools) that the auditor and gcloud call;
//! - Cloud Run v2 lists per region, Cloud Functions v2 lists (per region or all at once);
//! - Binary Authorization v1 policies, attestors and `validateAttestationOccurrence`;
//! - Run v1 revisions and Container Analysis occurrences (`attestation`: continuous
//!   validation);
//! - Cloud KMS `getPublicKey` and `asymmetricSign` (`kms`: what gcloud's `attestations
//!   sign-and-create` calls);
//! - Resource Manager v3 `projects:search`, `projects.list` and `folders.list`;
//! - Cloud Asset Inventory `assets.list`;
//!
//! plus the credential endpoints (`fake_auth`: OAuth, STS, IAM Credentials, metadata
//! servers) and what gcloud's own commands call (`gcloud_fake`). What it knows is a
//! [`World`]; every request passes the `layers` (in-flight counting, logging, faults,
//! authentication) before its handler.

mod attestation;
mod kms;
mod layers;
mod reads;
pub mod shapes;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use serde_json::{Value, json};

use shapes::google_error;
use world::{Behaviour, Estate, LoggedRequest, Observations, World};

pub const TEST_KEY_PEM: &str = include_str!("../../fixtures/test-only-service-account-key.pem");

pub type Shared = Arc<Mutex<World>>;

pub struct FakeGoogle {
    pub base_url: String,
    /// `host:port`, for settings that take no scheme (`GCE_METADATA_HOST`).
    pub addr: std::net::SocketAddr,
    world: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeGoogle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeGoogle {
    pub async fn start(world: World) -> FakeGoogle {
        let world = Arc::new(Mutex::new(world));
        let router = kms::routes(attestation::routes(reads::routes(super::fake_auth::routes(Router::new()))))
            .merge(super::gcloud_fake::routes())
            .fallback(|| async { google_error(404, "NOT_FOUND", "no such method in the fake", None) });
        let app = layers::around(router, &world).with_state(Arc::clone(&world));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the fake");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("fake server");
        });
        FakeGoogle { base_url: format!("http://{addr}"), addr, world, task }
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// Changes what Google holds (a fixed workload, a revoked permission).
    pub fn estate<R>(&self, change: impl FnOnce(&mut Estate) -> R) -> R {
        change(&mut self.lock().estate)
    }

    /// Changes how the fake answers from now on (a fault, a page size).
    pub fn behaviour<R>(&self, change: impl FnOnce(&mut Behaviour) -> R) -> R {
        change(&mut self.lock().behaviour)
    }

    /// Reads what the fake saw.
    pub fn seen<R>(&self, read: impl FnOnce(&Observations) -> R) -> R {
        read(&self.lock().seen)
    }

    /// Every request so far, token requests included.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.seen(|s| s.requests.clone())
    }

    /// The API requests so far (not token requests) and who made them.
    pub fn api_requests(&self) -> Vec<LoggedRequest> {
        self.seen(Observations::api_requests)
    }

    /// What the credential endpoint `endpoint` ("oauth2", "sts", ...) was asked.
    pub fn token_requests(&self, endpoint: &str) -> Vec<super::fake_auth::TokenRequest> {
        self.seen(|s| s.token_requests.iter().filter(|r| r.endpoint == endpoint).cloned().collect())
    }

    /// Forgets the requests seen so far (API and token requests alike), so that what follows
    /// is seen alone. Issued tokens stay valid.
    pub fn forget_requests(&self) {
        let mut w = self.lock();
        w.seen.requests.clear();
        w.seen.token_requests.clear();
    }

    /// Accepts `token` as `identity`'s from now on (a token made elsewhere, such as gcloud's).
    pub fn accept_token(&self, token: &str, identity: &str) {
        self.lock().accept(token, identity, None);
    }

    /// The most requests of `path` ever answered at once.
    pub fn max_in_flight(&self, path: &str) -> usize {
        self.seen(|s| s.max_in_flight.get(path).copied().unwrap_or(0))
    }

    /// Waits (up to 10 s) until a request of `path` is being answered: the caller is then
    /// inside whatever made it.
    pub async fn until_in_flight(&self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.seen(|s| s.in_flight.get(path).copied().unwrap_or(0)) == 0 {
            assert!(Instant::now() < deadline, "no request of {path} in flight within 10 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// GETs `path` as the auditor would (with the first token issued), as JSON.
    pub async fn get_json(&self, path: &str, query: &[(String, String)]) -> Value {
        let token = self.seen(|s| s.tokens.first().map(|t| t.token.clone())).expect("the auditor got a token first");
        super::run::http_client()
            .get(format!("{}{path}", self.base_url))
            .query(query)
            .bearer_auth(token)
            .send()
            .await
            .expect("the fake answers")
            .json()
            .await
            .expect("the fake answers JSON")
    }

    /// Writes a service-account key whose `token_uri` is this fake, readable by its owner only.
    pub fn write_key_file(&self, dir: &Path) -> PathBuf {
        let key = json!({
            "type": "service_account",
            "project_id": "auditor-host",
            "private_key_id": "test-only",
            "private_key": TEST_KEY_PEM,
            "client_email": "auditor@auditor-host.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": format!("{}/token", self.base_url),
        });
        let path = dir.join("key.json");
        std::fs::write(&path, key.to_string()).unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o600);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }
}

/// A TCP server that accepts connections and closes them without answering.
pub async fn closing_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut buf).await;
            drop(stream);
        }
    });
    (url, task)
}
