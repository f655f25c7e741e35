//! One Pub/Sub subscription over the REST API, through the client every Google call uses
//! (tokens, retries, metrics under `api="pubsub"`).

use std::sync::Arc;
use std::time::Duration;

use crate::collect::client::ApiClient;
use crate::collect::error::ApiError;
use crate::google::pubsub_v1::{
    AcknowledgeRequest, Empty, ModifyAckDeadlineRequest, PullRequest, PullResponse, ReceivedMessage,
};
use crate::inventory::Api;

/// Messages asked for per pull (the emulator hands out at most 100 whatever is asked).
const MAX_MESSAGES: u32 = 1000;
/// Pub/Sub caps one acknowledge request's size; 1000 ack IDs stay well under it.
const ACK_CHUNK: usize = 1000;

pub struct Subscription {
    client: Arc<ApiClient>,
    /// `{pubsub}/v1/projects/P/subscriptions/S`
    url: String,
    name: String,
    pull_timeout: Duration,
}

impl Subscription {
    /// `pull_timeout` bounds a long poll. It should outlast the server's own wait (about 90 s
    /// on the emulator; "bounded" in the API's words), so that an empty poll ends on the
    /// server's side and never leaves messages leased to a request nobody reads.
    pub fn new(client: Arc<ApiClient>, endpoint: &str, name: &str, pull_timeout: Duration) -> Subscription {
        Subscription { client, url: format!("{endpoint}/v1/{name}"), name: name.to_owned(), pull_timeout }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Waits for messages; an empty answer is normal (nothing happened).
    pub async fn pull(&self) -> Result<Vec<ReceivedMessage>, ApiError> {
        let request = PullRequest { max_messages: MAX_MESSAGES, return_immediately: false };
        let url = format!("{}:pull", self.url);
        let pulled: PullResponse = self.client.post(Api::Pubsub, &url, &request, Some(self.pull_timeout)).await?;
        Ok(pulled.received_messages)
    }

    /// Done with these messages: they are not delivered again.
    pub async fn acknowledge(&self, ack_ids: &[String]) -> Result<(), ApiError> {
        let url = format!("{}:acknowledge", self.url);
        for chunk in ack_ids.chunks(ACK_CHUNK) {
            let _: Empty = self.client.post(Api::Pubsub, &url, &AcknowledgeRequest { ack_ids: chunk }, None).await?;
        }
        Ok(())
    }

    /// Keeps these messages leased `seconds` longer (0: hand them back for redelivery now).
    pub async fn modify_ack_deadline(&self, ack_ids: &[String], seconds: u32) -> Result<(), ApiError> {
        let url = format!("{}:modifyAckDeadline", self.url);
        for chunk in ack_ids.chunks(ACK_CHUNK) {
            let request = ModifyAckDeadlineRequest { ack_ids: chunk, ack_deadline_seconds: seconds };
            let _: Empty = self.client.post(Api::Pubsub, &url, &request, None).await?;
        }
        Ok(())
    }
}
