//! One error type for every call to Google; it knows its metric label and whether a retry
//! could help.

use std::time::Duration;

use crate::inventory::Api;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 403 `SERVICE_DISABLED`: the API is not enabled in that project.
    #[error("{endpoint}: the {api} API is not enabled in this project (SERVICE_DISABLED)")]
    ServiceDisabled { endpoint: String, api: Api },
    #[error("{endpoint}: HTTP {code}{}: {message}", status_suffix(.status))]
    Status { endpoint: String, code: u16, status: String, message: String, retry_after: Option<Duration> },
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout { endpoint: String, after: Duration },
    #[error("{endpoint}: {message}")]
    Transport { endpoint: String, message: String },
    #[error("{endpoint}: unreadable response: {message}")]
    Decode { endpoint: String, message: String },
    #[error("{endpoint}: {message}")]
    Pagination { endpoint: String, message: String },
    #[error("cannot get a Google access token: {0}")]
    Auth(String),
}

fn status_suffix(status: &str) -> String {
    if status.is_empty() { String::new() } else { format!(" {status}") }
}

impl ApiError {
    /// The `code` label of `binauthz_api_requests_total` for a failed attempt; `None` for a
    /// token failure, where no request was sent (it is counted where the token is fetched, as
    /// `api="token"`).
    pub fn metric_code(&self) -> Option<String> {
        Some(match self {
            ApiError::ServiceDisabled { .. } => "403".into(),
            ApiError::Status { code, .. } => code.to_string(),
            ApiError::Timeout { .. } => "timeout".into(),
            ApiError::Transport { .. } => "transport".into(),
            ApiError::Decode { .. } | ApiError::Pagination { .. } => "invalid_response".into(),
            ApiError::Auth(_) => return None,
        })
    }

    /// Throttling, server-side trouble and lost connections are worth another try; a client
    /// error or a garbled body will be the same next time.
    pub fn is_retryable(&self) -> bool {
        match self {
            ApiError::Status { code, .. } => matches!(code, 429 | 500 | 502 | 503 | 504),
            ApiError::Timeout { .. } | ApiError::Transport { .. } => true,
            _ => false,
        }
    }

    /// The delay the server asked for (`Retry-After` or `google.rpc.RetryInfo`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
