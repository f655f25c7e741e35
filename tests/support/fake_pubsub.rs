//! An in-process fake of Pub/Sub's REST API, answering as the emulator does (bodies measured
//! against cloud-pubsub-emulator 0.8.20): `{}` for an empty pull, at most 100 messages a pull,
//! a redelivered message keeps its `messageId` and gets a new `ackId`, a deleted
//! subscription is 404 `NOT_FOUND`. Unlike the emulator it can fail on purpose (429, 503) and
//! its long poll lasts as long as a test wants, not 89 s.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use serde_json::{Value, json};

use super::fake_google::shapes::google_error;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub data: Option<String>,
    pub attributes: Value,
    pub publish_time: String,
}

#[derive(Debug, Default)]
struct Subscription {
    ack_deadline: Duration,
    /// Waiting to be pulled.
    ready: Vec<Message>,
    /// Pulled and not acknowledged: ackId -> (message, deadline).
    leased: BTreeMap<String, (Message, Instant)>,
    /// Message IDs acknowledged, and when.
    acked: Vec<(String, Instant)>,
    /// How many times each message was handed out.
    deliveries: BTreeMap<String, usize>,
}

#[derive(Debug, Default)]
pub struct PubSubWorld {
    topics: BTreeMap<String, Vec<String>>,
    subscriptions: BTreeMap<String, Subscription>,
    next_id: u64,
    /// How long an empty pull waits for a message.
    pub long_poll: Duration,
    /// `(path fragment, status, times)`: the next matching requests fail so.
    pub faults: Vec<(String, u16, usize)>,
    /// Every request: (path, body).
    pub log: Vec<(String, Value)>,
}

pub struct FakePubSub {
    pub base_url: String,
    world: Arc<Mutex<PubSubWorld>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakePubSub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Shared = Arc<Mutex<PubSubWorld>>;

impl FakePubSub {
    pub async fn start() -> FakePubSub {
        let world = Arc::new(Mutex::new(PubSubWorld { long_poll: Duration::from_millis(500), ..Default::default() }));
        let app = Router::new()
            .route("/v1/projects/{project}/topics/{topic}", put(create_topic).post(topic_verb))
            .route(
                "/v1/projects/{project}/subscriptions/{subscription}",
                put(create_subscription).post(subscription_verb).delete(delete_subscription),
            )
            .fallback(|| async { google_error(404, "NOT_FOUND", "no such method in the fake Pub/Sub", None) })
            .with_state(Arc::clone(&world));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakePubSub { base_url: format!("http://{addr}"), world, task }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut PubSubWorld) -> R) -> R {
        f(&mut self.world.lock().unwrap())
    }

    /// Message IDs acknowledged on `subscription` (its full name), in order.
    pub fn acked(&self, subscription: &str) -> Vec<String> {
        self.ack_times(subscription).into_iter().map(|(id, _)| id).collect()
    }

    /// Message IDs acknowledged on `subscription`, with the time each was.
    pub fn ack_times(&self, subscription: &str) -> Vec<(String, Instant)> {
        self.with(|w| w.subscriptions.get(subscription).map(|s| s.acked.clone()).unwrap_or_default())
    }

    /// How many times `message_id` was delivered on `subscription`.
    pub fn deliveries(&self, subscription: &str, message_id: &str) -> usize {
        self.with(|w| {
            w.subscriptions.get(subscription).and_then(|s| s.deliveries.get(message_id).copied()).unwrap_or(0)
        })
    }

    /// Requests whose path contains `fragment`.
    pub fn requests(&self, fragment: &str) -> usize {
        self.with(|w| w.log.iter().filter(|(p, _)| p.contains(fragment)).count())
    }
}

fn fault(w: &mut PubSubWorld, path: &str) -> Option<Response> {
    let i = w.faults.iter().position(|(fragment, _, times)| path.contains(fragment.as_str()) && *times > 0)?;
    w.faults[i].2 -= 1;
    let code = w.faults[i].1;
    let status = match code {
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    Some(google_error(code, status, "injected by the fake", None))
}

async fn create_topic(State(world): State<Shared>, UrlPath((project, topic)): UrlPath<(String, String)>) -> Response {
    let name = format!("projects/{project}/topics/{topic}");
    let mut w = world.lock().unwrap();
    if w.topics.contains_key(&name) {
        return google_error(409, "ALREADY_EXISTS", "Topic already exists", None);
    }
    w.topics.insert(name.clone(), Vec::new());
    axum::Json(json!({"name": name})).into_response()
}

async fn create_subscription(
    State(world): State<Shared>,
    UrlPath((project, subscription)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let name = format!("projects/{project}/subscriptions/{subscription}");
    let topic = body["topic"].as_str().unwrap_or_default().to_owned();
    let deadline = body["ackDeadlineSeconds"].as_u64().unwrap_or(10);
    let mut w = world.lock().unwrap();
    let Some(subscribers) = w.topics.get_mut(&topic) else {
        return google_error(404, "NOT_FOUND", "Subscription topic does not exist", None);
    };
    subscribers.push(name.clone());
    w.subscriptions
        .insert(name.clone(), Subscription { ack_deadline: Duration::from_secs(deadline), ..Default::default() });
    axum::Json(json!({"name": name, "topic": topic, "ackDeadlineSeconds": deadline})).into_response()
}

async fn delete_subscription(
    State(world): State<Shared>,
    UrlPath((project, subscription)): UrlPath<(String, String)>,
) -> Response {
    let name = format!("projects/{project}/subscriptions/{subscription}");
    match world.lock().unwrap().subscriptions.remove(&name) {
        Some(_) => axum::Json(json!({})).into_response(),
        None => google_error(404, "NOT_FOUND", "Subscription does not exist", None),
    }
}

async fn topic_verb(
    State(world): State<Shared>,
    UrlPath((project, topic_verb)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some((topic, "publish")) = topic_verb.split_once(':') else {
        return google_error(404, "NOT_FOUND", "no such method", None);
    };
    let name = format!("projects/{project}/topics/{topic}");
    let mut w = world.lock().unwrap();
    w.log.push((format!("/v1/{name}:publish"), body.clone()));
    let Some(subscribers) = w.topics.get(&name).cloned() else {
        return google_error(404, "NOT_FOUND", "Topic not found", None);
    };
    let mut ids = Vec::new();
    for m in body["messages"].as_array().cloned().unwrap_or_default() {
        w.next_id += 1;
        let message = Message {
            id: w.next_id.to_string(),
            data: m["data"].as_str().map(str::to_owned),
            attributes: m.get("attributes").cloned().unwrap_or(json!({})),
            publish_time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        };
        ids.push(message.id.clone());
        for s in &subscribers {
            if let Some(sub) = w.subscriptions.get_mut(s) {
                sub.ready.push(message.clone());
            }
        }
    }
    axum::Json(json!({"messageIds": ids})).into_response()
}

async fn subscription_verb(
    State(world): State<Shared>,
    UrlPath((project, subscription_verb)): UrlPath<(String, String)>,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let Some((subscription, verb)) = subscription_verb.split_once(':') else {
        return google_error(404, "NOT_FOUND", "no such method", None);
    };
    let name = format!("projects/{project}/subscriptions/{subscription}");
    let path = format!("/v1/{name}:{verb}");
    let long_poll = {
        let mut w = world.lock().unwrap();
        w.log.push((path.clone(), body.clone()));
        if let Some(failure) = fault(&mut w, &path) {
            return failure;
        }
        w.long_poll
    };
    match verb {
        "pull" => pull(&world, &name, &body, long_poll).await,
        "acknowledge" | "modifyAckDeadline" => {
            let mut w = world.lock().unwrap();
            let Some(sub) = w.subscriptions.get_mut(&name) else {
                return google_error(404, "NOT_FOUND", "Subscription does not exist", None);
            };
            let ids: Vec<String> =
                body["ackIds"].as_array().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect();
            if ids.is_empty() {
                return google_error(400, "INVALID_ARGUMENT", "No ack ids specified.", None);
            }
            for id in ids {
                if !id.starts_with(&format!("{name}:")) {
                    return google_error(400, "INVALID_ARGUMENT", &format!("Invalid ack id (ack_id={id})"), None);
                }
                // An expired or repeated ack ID is answered 200 and does nothing, as Google's does.
                let Some((message, _)) = sub.leased.remove(&id) else { continue };
                if verb == "acknowledge" {
                    sub.acked.push((message.id.clone(), Instant::now()));
                } else {
                    let seconds = body["ackDeadlineSeconds"].as_u64().unwrap_or(0);
                    if seconds == 0 {
                        sub.ready.push(message);
                    } else {
                        sub.leased.insert(id, (message, Instant::now() + Duration::from_secs(seconds)));
                    }
                }
            }
            axum::Json(json!({})).into_response()
        }
        _ => google_error(404, "NOT_FOUND", "no such method", None),
    }
}

async fn pull(world: &Shared, name: &str, body: &Value, long_poll: Duration) -> Response {
    let max = body["maxMessages"].as_u64().unwrap_or(0).min(100) as usize;
    if max == 0 {
        return google_error(400, "INVALID_ARGUMENT", "No max_messages specified", None);
    }
    let immediately = body["returnImmediately"].as_bool().unwrap_or(false);
    let until = Instant::now() + long_poll;
    loop {
        {
            let mut w = world.lock().unwrap();
            let next_ack = w.next_id;
            let Some(sub) = w.subscriptions.get_mut(name) else {
                return google_error(404, "NOT_FOUND", "Subscription does not exist", None);
            };
            // Leases past their deadline go back to be delivered again.
            let now = Instant::now();
            let expired: Vec<String> =
                sub.leased.iter().filter(|(_, (_, d))| *d <= now).map(|(k, _)| k.clone()).collect();
            for id in expired {
                let (m, _) = sub.leased.remove(&id).unwrap();
                sub.ready.push(m);
            }
            if !sub.ready.is_empty() {
                let take = sub.ready.len().min(max);
                let messages: Vec<Message> = sub.ready.drain(..take).collect();
                let mut received = Vec::new();
                for (i, m) in messages.into_iter().enumerate() {
                    let ack_id =
                        format!("{name}:{}-{i}", next_ack * 1000 + sub.deliveries.values().sum::<usize>() as u64);
                    *sub.deliveries.entry(m.id.clone()).or_default() += 1;
                    let mut message =
                        json!({"attributes": m.attributes, "messageId": m.id, "publishTime": m.publish_time});
                    if let Some(data) = &m.data {
                        message["data"] = json!(data);
                    }
                    received.push(json!({"ackId": ack_id, "message": message}));
                    sub.leased.insert(ack_id, (m, now + sub.ack_deadline));
                }
                return axum::Json(json!({"receivedMessages": received})).into_response();
            }
        }
        if immediately || Instant::now() >= until {
            return axum::Json(json!({})).into_response();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
