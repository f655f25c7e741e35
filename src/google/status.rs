//! `google.rpc.Status` error bodies.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Envelope {
    error: RpcStatus,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct RpcStatus {
    pub code: i64,
    pub message: String,
    pub status: String,
    pub details: Vec<Detail>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct Detail {
    #[serde(rename = "@type")]
    pub type_url: String,
    /// ErrorInfo.reason, e.g. `SERVICE_DISABLED`, `RATE_LIMIT_EXCEEDED`.
    pub reason: Option<String>,
    /// RetryInfo.retryDelay, a protobuf Duration in JSON form (`"1.5s"`).
    pub retry_delay: Option<String>,
}

impl RpcStatus {
    /// Parses an error body; `None` when it is not one (an HTML page, a proxy's text...).
    pub fn parse(body: &[u8]) -> Option<RpcStatus> {
        // serde would also read a struct from an array (`[{...}]`): only an object is an envelope.
        if !is_json_object(body) {
            return None;
        }
        serde_json::from_slice::<Envelope>(body).ok().map(|e| e.error)
    }

    pub fn reason(&self) -> Option<&str> {
        self.details.iter().find_map(|d| d.reason.as_deref())
    }

    pub fn retry_delay(&self) -> Option<Duration> {
        self.details.iter().find_map(|d| d.retry_delay.as_deref().and_then(parse_proto_duration))
    }

    pub fn is_service_disabled(&self) -> bool {
        self.reason() == Some("SERVICE_DISABLED")
    }
}

pub fn is_json_object(body: &[u8]) -> bool {
    body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// `"3s"`, `"1.500s"` -> Duration. Negative or absurd values are refused.
pub fn parse_proto_duration(s: &str) -> Option<Duration> {
    let secs: f64 = s.strip_suffix('s')?.parse().ok()?;
    (secs.is_finite() && (0.0..=86_400.0).contains(&secs)).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_disabled_and_retry_delay_are_read_from_details() {
        let body = br#"{"error":{"code":403,"message":"Cloud Run Admin API has not been used","status":"PERMISSION_DENIED",
            "details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"SERVICE_DISABLED","domain":"googleapis.com","metadata":{"service":"run.googleapis.com"}},
                       {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"1.5s"}]}}"#;
        let status = RpcStatus::parse(body).expect("an error body");
        assert!(status.is_service_disabled());
        assert_eq!(status.retry_delay(), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn a_list_of_resources_is_not_an_error_body() {
        assert_eq!(RpcStatus::parse(br#"[{"metadata":{"name":"x"}}]"#), None);
    }

    #[test]
    fn html_is_not_an_error_body() {
        assert_eq!(RpcStatus::parse(b"<html>502 Bad Gateway</html>"), None);
    }

    #[test]
    fn bad_durations_are_refused() {
        assert_eq!(parse_proto_duration("-1s"), None);
        assert_eq!(parse_proto_duration("1e9s"), None);
        assert_eq!(parse_proto_duration("5"), None);
        assert_eq!(parse_proto_duration("NaNs"), None);
    }
}
