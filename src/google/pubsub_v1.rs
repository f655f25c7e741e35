//! Pub/Sub v1 REST: pulling a subscription and acknowledging what was handled. Shapes as the
//! API and its emulator send them: an empty pull is `{}` (no `receivedMessages` key), `data`
//! is base64 (absent when a message carries attributes only), `deliveryAttempt` appears only
//! with a dead-letter policy.

use std::collections::BTreeMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PullRequest {
    pub max_messages: u32,
    /// Always false: a pull that returns at once whenever nothing is waiting turns the loop
    /// into a busy poll (Google discourages it); the client's own timeout bounds the wait.
    pub return_immediately: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PullResponse {
    pub received_messages: Vec<ReceivedMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ReceivedMessage {
    /// Opaque: never parsed, only sent back.
    pub ack_id: String,
    pub message: PubsubMessage,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PubsubMessage {
    pub data: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub message_id: String,
    pub publish_time: Option<String>,
}

impl PubsubMessage {
    /// The payload's bytes; `None` when `data` is absent or not base64.
    pub fn payload(&self) -> Option<Vec<u8>> {
        let data = self.data.as_deref()?;
        base64::engine::general_purpose::STANDARD.decode(data).ok()
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcknowledgeRequest<'a> {
    pub ack_ids: &'a [String],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyAckDeadlineRequest<'a> {
    pub ack_ids: &'a [String],
    /// 0 hands the messages back for redelivery at once (a "nack").
    pub ack_deadline_seconds: u32,
}

/// Acknowledge and modifyAckDeadline answer `{}`.
#[derive(Debug, Default, Deserialize)]
pub struct Empty {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pull_is_an_empty_object() {
        let empty: PullResponse = serde_json::from_str("{}").unwrap();
        assert!(empty.received_messages.is_empty());
    }

    #[test]
    fn a_pulled_message_decodes_as_the_emulator_sends_it() {
        let body = r#"{"receivedMessages":[{"ackId":"projects/p/subscriptions/s:1","message":{
            "data":"eyJhIjoxfQ==","attributes":{"logging.googleapis.com/timestamp":"2026-11-29T08:00:00.123456Z"},
            "messageId":"1","publishTime":"2026-11-29T08:36:22.863Z"}}]}"#;
        let pulled: PullResponse = serde_json::from_str(body).unwrap();
        let m = &pulled.received_messages[0];
        assert_eq!(m.ack_id, "projects/p/subscriptions/s:1");
        assert_eq!(m.message.payload().as_deref(), Some(&b"{\"a\":1}"[..]));
        let attributes_only: PubsubMessage =
            serde_json::from_str(r#"{"attributes":{"k":"v"},"messageId":"2"}"#).unwrap();
        assert_eq!(attributes_only.payload(), None);
    }

    #[test]
    fn requests_use_the_api_field_names() {
        let ids = vec!["a".to_owned()];
        let body = serde_json::to_value(ModifyAckDeadlineRequest { ack_ids: &ids, ack_deadline_seconds: 0 }).unwrap();
        assert_eq!(body, serde_json::json!({"ackIds": ["a"], "ackDeadlineSeconds": 0}));
        let body = serde_json::to_value(PullRequest { max_messages: 100, return_immediately: false }).unwrap();
        assert_eq!(body, serde_json::json!({"maxMessages": 100, "returnImmediately": false}));
    }
}
