//! One cached token per credential hop, refreshed ahead of expiry, fetched by one caller at a
//! time (single-flight), behind gcp_auth's `TokenProvider` trait.
//!
//! - A token with more than `ahead` left is served at once.
//! - Inside that window one caller refreshes while everyone else keeps the still-valid token;
//!   callers only wait when no usable token (more than `min_usable` left) is held.
//! - Callers that waited for a refresh take its result instead of fetching again (gcp_auth's
//!   own cache makes N waiters fetch N times).
//! - A failure is replayed for `hold_off` rather than re-fetched by every caller, and nothing is
//!   permanent: the next caller after that tries again, so a fixed IAM binding heals without a
//!   restart.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use gcp_auth::{Token, TokenProvider};
use tokio::time::Instant;

use super::error::AuthError;
use super::http::TokenHttp;
use super::secret::Secret;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Makes a new token: one hop of a credential chain.
#[async_trait]
pub trait Mint: Send + Sync {
    async fn mint(&self, http: &TokenHttp) -> Result<Minted, AuthError>;
    /// What is asked where, for messages: `POST https://oauth2.googleapis.com/token`.
    fn what(&self) -> String;
}

pub struct Minted {
    pub token: Secret,
    pub expires_at: Instant,
}

impl Minted {
    pub fn lasting(token: Secret, seconds: u64) -> Minted {
        Minted { token, expires_at: Instant::now() + Duration::from_secs(seconds) }
    }

    /// From an absolute RFC 3339 time (IAM Credentials' `expireTime`). A time already past —
    /// a skewed clock here or there — is an error, not a token that looks valid forever.
    pub fn until(token: Secret, expire_time: &str, what: &str) -> Result<Minted, AuthError> {
        let at = chrono::DateTime::parse_from_rfc3339(expire_time).map_err(|e| {
            AuthError::permanent(format!("{what}: expireTime {expire_time:?} is not an RFC 3339 time: {e}"))
        })?;
        let left = at.signed_duration_since(chrono::Utc::now());
        match left.to_std() {
            Ok(left) if !left.is_zero() => Ok(Minted { token, expires_at: Instant::now() + left }),
            _ => Err(AuthError::permanent(format!(
                "{what}: the token expires at {expire_time}, {}s ago by this host's clock (is the clock skewed?)",
                -left.num_seconds()
            ))),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Windows {
    /// Refresh when less than this is left (at most half the token's life).
    pub ahead: Duration,
    /// Never hand out a token with less than this left.
    pub min_usable: Duration,
    /// How long a failure is replayed before the next fetch.
    pub hold_off: Duration,
}

impl Default for Windows {
    fn default() -> Windows {
        Windows {
            // Below the metadata server's own 5-minute rotation, so a refresh gets a new token
            // (google-cloud-auth uses 240 s, Python 225 s).
            ahead: Duration::from_secs(240),
            // Enough for a request queued behind others to still carry a valid token.
            min_usable: Duration::from_secs(30),
            hold_off: Duration::from_secs(5),
        }
    }
}

pub struct Cached {
    mint: Box<dyn Mint>,
    http: TokenHttp,
    /// gcp.token_timeout: one whole fetch, retries and earlier hops included.
    timeout: Duration,
    windows: Windows,
    state: Mutex<State>,
    /// The single flight: only its holder fetches. Held across the fetch, never the state lock.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    current: Option<Held>,
    /// Bumped by every finished fetch, so a caller that waited knows one happened.
    generation: u64,
    /// The last fetch failed (cleared by a success).
    failure: Option<(Instant, AuthError)>,
}

#[derive(Clone)]
struct Held {
    token: Arc<Token>,
    expires_at: Instant,
    ahead: Duration,
}

impl Held {
    fn left(&self) -> Duration {
        self.expires_at.saturating_duration_since(Instant::now())
    }
}

impl Cached {
    pub fn new(mint: impl Mint + 'static, http: TokenHttp, timeout: Duration, windows: Windows) -> Cached {
        Cached {
            mint: Box::new(mint),
            http,
            timeout,
            windows,
            state: Mutex::new(State::default()),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub async fn get(&self) -> Result<Arc<Token>, AuthError> {
        let (seen, usable) = {
            let s = self.state();
            if let Some(h) = s.current.as_ref().filter(|h| h.left() > h.ahead) {
                return Ok(Arc::clone(&h.token));
            }
            let usable =
                s.current.as_ref().filter(|h| h.left() > self.windows.min_usable).map(|h| Arc::clone(&h.token));
            (s.generation, usable)
        };
        let _flight = match &usable {
            Some(token) => match self.flight.try_lock() {
                Ok(guard) => guard,
                Err(_) => return Ok(Arc::clone(token)),
            },
            None => self.flight.lock().await,
        };
        {
            let s = self.state();
            if s.generation != seen {
                // A fetch finished while this caller waited: its result is this caller's too.
                match (&s.failure, &s.current) {
                    (Some((_, e)), _) => return usable.ok_or_else(|| e.clone()),
                    (None, Some(h)) if !h.left().is_zero() => return Ok(Arc::clone(&h.token)),
                    _ => {}
                }
            }
            if let Some((at, e)) = &s.failure
                && at.elapsed() < self.windows.hold_off
            {
                return usable.ok_or_else(|| e.clone());
            }
        }
        let fetched = match tokio::time::timeout(self.timeout, self.mint.mint(&self.http)).await {
            Ok(result) => result.and_then(|m| self.held(m)),
            Err(_) => Err(AuthError::transient(format!("{}: no token within {:?}", self.mint.what(), self.timeout))),
        };
        let mut s = self.state();
        s.generation += 1;
        match fetched {
            Ok(held) => {
                let token = Arc::clone(&held.token);
                s.current = Some(held);
                s.failure = None;
                Ok(token)
            }
            Err(e) => {
                s.failure = Some((Instant::now(), e.clone()));
                match usable {
                    Some(token) => {
                        tracing::warn!(error = %e, "cannot refresh an access token; the current one is used while it lasts");
                        Ok(token)
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn held(&self, minted: Minted) -> Result<Held, AuthError> {
        let life = minted.expires_at.saturating_duration_since(Instant::now());
        // gcp_auth's Token has private fields; its Deserialize is the public way to build one.
        let token: Token = serde_json::from_value(
            serde_json::json!({"access_token": minted.token.expose(), "expires_in": life.as_secs()}),
        )
        .map_err(|_| AuthError::permanent(format!("{}: cannot hold the token", self.mint.what())))?;
        Ok(Held {
            token: Arc::new(token),
            expires_at: minted.expires_at,
            ahead: self.windows.ahead.min(life / 2).max(self.windows.min_usable),
        })
    }
}

/// The auditor only ever asks for cloud-platform; `project_id` is never needed (projects come
/// from the configuration).
#[async_trait]
impl TokenProvider for Cached {
    async fn token(&self, scopes: &[&str]) -> Result<Arc<Token>, gcp_auth::Error> {
        debug_assert_eq!(scopes, [CLOUD_PLATFORM]);
        self.get().await.map_err(|e| gcp_auth::Error::Other("access token", Box::new(e)))
    }

    async fn project_id(&self) -> Result<Arc<str>, gcp_auth::Error> {
        Err(gcp_auth::Error::Str("the auditor takes its projects from its configuration, not its credentials"))
    }
}

#[cfg(test)]
pub mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    pub fn test_http() -> TokenHttp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        TokenHttp::new(reqwest::Client::new(), reqwest::Client::builder)
    }

    /// Mints `tok-N` lasting `life`; fails while `failing` is set.
    struct Counting {
        minted: Arc<AtomicUsize>,
        life: Duration,
        failing: Arc<std::sync::atomic::AtomicBool>,
        delay: Duration,
    }

    #[async_trait]
    impl Mint for Counting {
        async fn mint(&self, _: &TokenHttp) -> Result<Minted, AuthError> {
            tokio::time::sleep(self.delay).await;
            let n = self.minted.fetch_add(1, Ordering::SeqCst) + 1;
            if self.failing.load(Ordering::SeqCst) {
                return Err(AuthError::permanent("POST fake: HTTP 403: PERMISSION_DENIED"));
            }
            Ok(Minted::lasting(Secret::new(format!("tok-{n}")), self.life.as_secs()))
        }
        fn what(&self) -> String {
            "POST fake".into()
        }
    }

    fn counting(life: u64, delay_ms: u64) -> (Arc<Cached>, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicBool>) {
        let minted = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mint = Counting {
            minted: Arc::clone(&minted),
            life: Duration::from_secs(life),
            failing: Arc::clone(&failing),
            delay: Duration::from_millis(delay_ms),
        };
        (Arc::new(Cached::new(mint, test_http(), Duration::from_secs(30), Windows::default())), minted, failing)
    }

    async fn token(c: &Cached) -> String {
        c.get().await.unwrap().as_str().to_owned()
    }

    #[tokio::test(start_paused = true)]
    async fn fifty_callers_on_a_cold_cache_make_one_request() {
        let (cache, minted, _) = counting(3600, 50);
        let calls: Vec<_> = (0..50)
            .map(|_| {
                tokio::spawn({
                    let c = Arc::clone(&cache);
                    async move { token(&c).await }
                })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap(), "tok-1");
        }
        assert_eq!(minted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn inside_the_refresh_window_one_caller_refreshes_and_the_others_do_not_wait() {
        let (cache, minted, _) = counting(3600, 1000);
        assert_eq!(token(&cache).await, "tok-1");
        tokio::time::advance(Duration::from_secs(3600 - 200)).await;
        let refresher = tokio::spawn({
            let c = Arc::clone(&cache);
            async move { token(&c).await }
        });
        tokio::task::yield_now().await;
        let started = Instant::now();
        for _ in 0..10 {
            assert_eq!(token(&cache).await, "tok-1", "the old token, still valid, at once");
        }
        assert!(started.elapsed() < Duration::from_millis(10));
        assert_eq!(refresher.await.unwrap(), "tok-2");
        assert_eq!(token(&cache).await, "tok-2");
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_near_expiry_is_not_handed_out() {
        let (cache, minted, _) = counting(3600, 10);
        token(&cache).await;
        tokio::time::advance(Duration::from_secs(3600 - 20)).await;
        assert_eq!(token(&cache).await, "tok-2", "20 s left is too little: wait for a new one");
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_replayed_briefly_then_retried_and_heals() {
        let (cache, minted, failing) = counting(3600, 10);
        failing.store(true, Ordering::SeqCst);
        let e = cache.get().await.unwrap_err();
        assert!(e.to_string().contains("PERMISSION_DENIED"), "{e}");
        assert!(cache.get().await.is_err());
        assert_eq!(minted.load(Ordering::SeqCst), 1, "replayed, not re-fetched");
        failing.store(false, Ordering::SeqCst);
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(token(&cache).await, "tok-2", "no permanent poisoning");
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_serving_the_valid_token() {
        let (cache, _, failing) = counting(3600, 10);
        token(&cache).await;
        tokio::time::advance(Duration::from_secs(3600 - 100)).await;
        failing.store(true, Ordering::SeqCst);
        assert_eq!(token(&cache).await, "tok-1");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fetch_that_hangs_times_out() {
        let (cache, _, _) = counting(3600, 60_000);
        let e = cache.get().await.unwrap_err();
        assert_eq!(e.to_string(), "POST fake: no token within 30s");
    }

    #[tokio::test(start_paused = true)]
    async fn short_lived_tokens_refresh_at_half_their_life() {
        let (cache, minted, _) = counting(300, 1);
        token(&cache).await;
        tokio::time::advance(Duration::from_secs(140)).await;
        assert_eq!(token(&cache).await, "tok-1");
        tokio::time::advance(Duration::from_secs(20)).await;
        assert_eq!(token(&cache).await, "tok-2");
        assert_eq!(minted.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn an_expire_time_in_the_past_is_an_error_not_a_panic() {
        let e = Minted::until(Secret::new("t"), "2001-01-01T00:00:00Z", "POST x").err().unwrap();
        assert!(e.to_string().contains("clock skewed"), "{e}");
        assert!(Minted::until(Secret::new("t"), "tomorrow", "POST x").is_err());
        let future = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        assert!(Minted::until(Secret::new("t"), &future, "POST x").is_ok());
    }
}
