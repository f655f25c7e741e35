//! Pub/Sub for the event tests: the real emulator that ships with the Google Cloud CLI (skipped,
//! with one line, where it is absent), or the in-process fake; either way set up and published
//! to over the same REST calls, the way a Log Router sink publishes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

use super::gcloud::skip;
use super::run::{free_port, http_client};

/// The attribute a Log Router sink sets: the LogEntry's own timestamp.
pub const LOG_TIMESTAMP: &str = "logging.googleapis.com/timestamp";

/// The emulator, running until dropped.
pub struct Emulator {
    pub base_url: String,
    child: Child,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Emulator {
    /// Starts the emulator's launcher directly (a single java process: `gcloud beta emulators
    /// pubsub start` would fork one that outlives a killed gcloud), ready when `GET /` answers.
    /// `None`, and one printed line, when gcloud or the emulator is not installed.
    pub async fn start(test: &str) -> Option<Emulator> {
        let gcloud = std::env::var("GCLOUD").unwrap_or_else(|_| "gcloud".into());
        let root = match Command::new(gcloud).args(["info", "--format=value(installation.sdk_root)"]).output().await {
            Ok(out) if out.status.success() => PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
            _ => {
                skip(test, "the Google Cloud CLI (gcloud), which ships the Pub/Sub emulator, is not installed");
                return None;
            }
        };
        let launcher = root.join("platform/pubsub-emulator/bin/cloud-pubsub-emulator");
        if !launcher.exists() {
            skip(test, "the Pub/Sub emulator is not installed (gcloud components install pubsub-emulator)");
            return None;
        }
        let port = free_port();
        let child = Command::new(&launcher)
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", launcher.display()));
        let emulator = Emulator { base_url: format!("http://127.0.0.1:{port}"), child };
        let deadline = Instant::now() + Duration::from_secs(60);
        let http = http_client();
        while !http.get(&emulator.base_url).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "the Pub/Sub emulator did not answer within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(emulator)
    }
}

/// Topic and subscription management and publishing, over REST.
pub struct Admin {
    base: String,
    http: reqwest::Client,
}

impl Admin {
    pub fn new(base_url: &str) -> Admin {
        Admin { base: base_url.to_owned(), http: http_client() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let response = self.http.request(method, format!("{}/v1/{path}", self.base)).json(&body).send().await.unwrap();
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }

    /// Creates `projects/P/topics/T` and a subscription `projects/P/subscriptions/S` on it;
    /// returns the subscription's name.
    pub async fn topic_and_subscription(
        &self,
        project: &str,
        topic: &str,
        subscription: &str,
        ack_deadline: u32,
    ) -> String {
        let topic = format!("projects/{project}/topics/{topic}");
        self.call(reqwest::Method::PUT, &topic, json!({})).await;
        let name = format!("projects/{project}/subscriptions/{subscription}");
        self.call(reqwest::Method::PUT, &name, json!({"topic": topic, "ackDeadlineSeconds": ack_deadline})).await;
        name
    }

    pub async fn delete_subscription(&self, name: &str) {
        self.call(reqwest::Method::DELETE, name, Value::Null).await;
    }

    /// Publishes `data` as a Log Router sink does (compact JSON, base64, the timestamp
    /// attribute when the entry has one); returns the message ID.
    pub async fn publish_entry(&self, topic: &str, entry: &Value) -> String {
        let mut attributes = json!({});
        if let Some(timestamp) = entry["timestamp"].as_str() {
            attributes[LOG_TIMESTAMP] = json!(timestamp);
        }
        self.publish(topic, entry.to_string().as_bytes(), attributes).await
    }

    /// Publishes raw bytes with `attributes`.
    pub async fn publish(&self, topic: &str, data: &[u8], attributes: Value) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        let answer = self
            .call(
                reqwest::Method::POST,
                &format!("{topic}:publish"),
                json!({"messages": [{"data": data, "attributes": attributes}]}),
            )
            .await;
        answer["messageIds"][0].as_str().unwrap().to_owned()
    }
}
