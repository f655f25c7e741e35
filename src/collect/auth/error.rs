//! Why a token could not be had, as one line without secrets: the endpoint (scheme, host and
//! path only: a query may carry a secret), the HTTP status and Google's error code and message —
//! never a request or response body, an executable's output or a file's content.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthError {
    message: String,
    /// Worth another try: a lost connection, a timeout, 429 or 5xx.
    transient: bool,
}

impl AuthError {
    pub fn permanent(message: impl Into<String>) -> AuthError {
        AuthError { message: one_line(&message.into()), transient: false }
    }

    pub fn transient(message: impl Into<String>) -> AuthError {
        AuthError { message: one_line(&message.into()), transient: true }
    }

    pub fn is_transient(&self) -> bool {
        self.transient
    }

    /// The same error, said to be about `what` (a source token under an impersonation, say).
    pub fn context(self, what: &str) -> AuthError {
        AuthError { message: format!("{what}: {}", self.message), ..self }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for AuthError {}

/// `METHOD scheme://host[:port]/path`: what a message names a request by.
pub fn endpoint(method: &str, url: &url::Url) -> String {
    format!("{method} {}", without_query(url))
}

pub fn without_query(url: &url::Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.set_fragment(None);
    let _ = bare.set_username("");
    let _ = bare.set_password(None);
    bare.to_string()
}

/// Whitespace flattened, at most 300 characters: messages from servers and executables.
pub fn shorten(s: &str) -> String {
    let flat = one_line(s);
    match flat.char_indices().nth(300) {
        Some((i, _)) => format!("{}...", &flat[..i]),
        None => flat,
    }
}

/// A serde_json error without the values it quotes (`invalid type: string "…"`): a misplaced
/// token or secret must not end up in a message.
pub fn serde_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        if c == '"' {
            if !quoted {
                out.push_str("\"…\"");
            }
            quoted = !quoted;
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_drop_queries_and_credentials() {
        let url = url::Url::parse("https://u:p@example.com/subject?key=SECRET#x").unwrap();
        assert_eq!(endpoint("GET", &url), "GET https://example.com/subject");
    }

    #[test]
    fn messages_are_one_short_line() {
        assert_eq!(AuthError::permanent("a\n b").to_string(), "a b");
        assert!(shorten(&"x".repeat(400)).ends_with("..."));
        assert_eq!(AuthError::transient("x").context("source").to_string(), "source: x");
    }

    #[test]
    fn serde_messages_lose_quoted_values() {
        let e = serde_json::from_str::<u64>("\"ya29.secret\"").unwrap_err();
        let m = serde_message(&e);
        assert!(!m.contains("ya29") && m.contains("invalid type: string"), "{m}");
    }
}
