//! HTTP basic authentication against bcrypt hashes, as Prometheus exporters do it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// Verified credentials are remembered: bcrypt is slow on purpose and Prometheus scrapes often.
const CACHE_LIMIT: usize = 64;

#[derive(Default)]
pub struct BasicAuth {
    users: RwLock<Arc<BTreeMap<String, String>>>,
    verified: Mutex<HashSet<String>>,
}

impl BasicAuth {
    pub fn set_users(&self, users: BTreeMap<String, String>) {
        *self.users.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(users);
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn enabled(&self) -> bool {
        !self.users.read().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    async fn allows(&self, header: Option<&str>) -> bool {
        let users = Arc::clone(&self.users.read().unwrap_or_else(|p| p.into_inner()));
        if users.is_empty() {
            return true;
        }
        let Some((user, password)) = header.and_then(parse_basic) else {
            return false;
        };
        let Some(hash) = users.get(&user).cloned() else {
            return false;
        };
        let key = format!("{user}\0{password}\0{hash}");
        if self.verified.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
            return true;
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        if ok {
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= CACHE_LIMIT {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = header.strip_prefix("Basic ").or_else(|| header.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

pub async fn require(State(auth): State<Arc<BasicAuth>>, request: Request, next: Next) -> Response {
    let header = request.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if auth.allows(header).await {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, [(WWW_AUTHENTICATE, "Basic realm=\"binauthz-auditor\"")], "Unauthorized\n")
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_known_users_with_the_right_password_get_in() {
        let auth = BasicAuth::default();
        assert!(auth.allows(None).await, "no users configured: open");
        auth.set_users(BTreeMap::from([("prom".to_string(), bcrypt::hash("s3cret", 4).unwrap())]));
        let header = |creds: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(creds));
        assert!(auth.allows(Some(&header("prom:s3cret"))).await);
        assert!(auth.allows(Some(&header("prom:s3cret"))).await, "cached");
        assert!(!auth.allows(Some(&header("prom:wrong"))).await);
        assert!(!auth.allows(Some(&header("root:s3cret"))).await);
        assert!(!auth.allows(None).await);
        assert!(!auth.allows(Some("Bearer x")).await);
    }
}
