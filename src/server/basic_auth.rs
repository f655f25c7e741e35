//! HTTP basic authentication against bcrypt hashes, as Prometheus exporters do it, without
//! becoming a CPU amplifier: outcomes are cached (failures too) and checked before anything
//! queues, checks run one at a time (see bcrypt_gate), and an unknown user costs the same
//! bcrypt as a known one, so timing does not tell which users exist.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use crate::server::attempts::Attempts;
use crate::server::bcrypt_gate::{BcryptGate, Busy, Priority};
use crate::server::connection::Peer;

/// A well-formed bcrypt hash of nothing anyone knows; its cost is replaced by the costliest
/// configured user's, so checking an unknown user takes as long as checking a known one.
const DUMMY_HASH: &str = "$2y$04$W5uxCgN9n1vXYXzBzhrnAuDhhvS39A2wm0ct2pxlA.6ifRvrW5qR.";

pub struct BasicAuth {
    users: RwLock<Arc<Users>>,
    attempts: Attempts,
    gate: BcryptGate,
}

#[derive(Default)]
struct Users {
    hashes: BTreeMap<String, String>,
    dummy: String,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Denied,
    /// Too many password checks are waiting; try again shortly.
    Busy,
}

impl BasicAuth {
    /// Needs a tokio runtime (it starts the password-checking task).
    pub fn start() -> BasicAuth {
        BasicAuth { users: RwLock::default(), attempts: Attempts::default(), gate: BcryptGate::start() }
    }

    /// Replaces the users. Cached outcomes stay valid: they are tied to the hash they were
    /// checked against, so a changed hash is checked afresh.
    pub fn set_users(&self, hashes: BTreeMap<String, String>) {
        let cost = hashes.values().filter_map(|h| h.get(4..6)).filter_map(|c| c.parse::<u32>().ok()).max();
        let dummy = format!("$2y${:02}{}", cost.unwrap_or(4), &DUMMY_HASH[6..]);
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Users { hashes, dummy });
    }

    pub fn enabled(&self) -> bool {
        !self.users.read().unwrap_or_else(|p| p.into_inner()).hashes.is_empty()
    }

    pub async fn check(&self, header: Option<&str>, peer: IpAddr) -> Verdict {
        let users = Arc::clone(&self.users.read().unwrap_or_else(|p| p.into_inner()));
        if users.hashes.is_empty() {
            return Verdict::Allowed;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return Verdict::Denied;
        };
        let (hash, known) = match users.hashes.get(&user) {
            Some(hash) => (hash.as_str(), true),
            None => (users.dummy.as_str(), false),
        };
        let tag = self.attempts.tag(&user, &password, hash);
        if let Some(ok) = self.attempts.outcome(&tag) {
            return verdict(ok);
        }
        let good = self.attempts.tag(&user, &password, "");
        let priority = if known && self.attempts.was_good(&good) { Priority::KnownGood } else { Priority::Other };
        match self.gate.verify(&password, hash, priority, peer).await {
            Ok(matched) => {
                let ok = matched && known;
                self.attempts.record(tag, ok, good);
                verdict(ok)
            }
            Err(Busy) => Verdict::Busy,
        }
    }
}

fn verdict(ok: bool) -> Verdict {
    if ok { Verdict::Allowed } else { Verdict::Denied }
}

/// `Basic <base64(user:password)>`; the scheme is case-insensitive (RFC 7235 section 2.1).
fn parse_basic(header: &str) -> Option<(String, String)> {
    let (scheme, encoded) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    let peer = request.extensions().get::<Peer>().map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.0.ip());
    match auth.check(header, peer).await {
        Verdict::Allowed => next.run(request).await,
        Verdict::Denied => {
            (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, "Basic realm=\"binauthz-auditor\"")], "Unauthorized\n")
                .into_response()
        }
        Verdict::Busy => {
            (StatusCode::TOO_MANY_REQUESTS, [(RETRY_AFTER, "1")], "Too many password checks waiting; retry shortly\n")
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(scheme: &str, creds: &str) -> String {
        format!("{scheme} {}", base64::engine::general_purpose::STANDARD.encode(creds))
    }

    #[tokio::test]
    async fn only_known_users_with_the_right_password_get_in() {
        let auth = BasicAuth::start();
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(auth.check(None, peer).await, Verdict::Allowed, "no users configured: open");
        auth.set_users(BTreeMap::from([("prom".to_string(), bcrypt::hash("s3cret", 4).unwrap())]));
        assert_eq!(auth.check(Some(&header("Basic", "prom:s3cret")), peer).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&header("Basic", "prom:s3cret")), peer).await, Verdict::Allowed, "cached");
        assert_eq!(auth.check(Some(&header("BASIC", "prom:s3cret")), peer).await, Verdict::Allowed, "RFC 7235");
        assert_eq!(auth.check(Some(&header("basic", "prom:s3cret")), peer).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&header("Basic", "prom:wrong")), peer).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&header("Basic", "prom:wrong")), peer).await, Verdict::Denied, "cached");
        assert_eq!(auth.check(Some(&header("Basic", "root:s3cret")), peer).await, Verdict::Denied);
        assert_eq!(auth.check(None, peer).await, Verdict::Denied);
        assert_eq!(auth.check(Some("Bearer x"), peer).await, Verdict::Denied);
        assert_eq!(auth.check(Some("Basicx"), peer).await, Verdict::Denied);
    }

    #[tokio::test]
    async fn a_new_hash_is_checked_afresh_and_unknown_users_cost_a_check_of_the_same_cost() {
        let auth = BasicAuth::start();
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        auth.set_users(BTreeMap::from([("prom".to_string(), bcrypt::hash("old", 5).unwrap())]));
        assert!(auth.users.read().unwrap().dummy.starts_with("$2y$05$"));
        assert_eq!(auth.check(Some(&header("Basic", "prom:old")), peer).await, Verdict::Allowed);
        auth.set_users(BTreeMap::from([("prom".to_string(), bcrypt::hash("new", 4).unwrap())]));
        assert_eq!(auth.check(Some(&header("Basic", "prom:old")), peer).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&header("Basic", "prom:new")), peer).await, Verdict::Allowed);
    }
}
