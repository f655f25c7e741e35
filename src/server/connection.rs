//! One accepted connection, from the TLS handshake to its close, under the endpoint's
//! timeouts. HTTP/1 on plain TCP; over TLS, HTTP/2 only when the client negotiated `h2`.
//!
//! The timeouts are kept here rather than by hyper's `header_read_timeout`, whose clock also
//! runs while a keep-alive connection waits for its next request (it would cut Prometheus's
//! connections at the header deadline). The rules, like Go's http.Server:
//! - header_read_timeout: from accept (TLS handshake and HTTP/2 preface included), or from the
//!   first byte of a later request, until the request head is complete;
//! - idle_timeout: a keep-alive connection waiting for its next request;
//! - write_timeout: from a request's head to the end of its response (a client that does not
//!   read holds nothing past it).

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body as AxumBody;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tower_service::Service;

use crate::config::ServerLimits;
use crate::server::tls::TlsSwitch;

/// HTTP/1: a request head larger than this is answered 431 (Prometheus sends under 1 KiB),
/// and hyper's buffers are capped, which bounds what one connection can make us hold.
const MAX_HTTP1_HEAD: usize = 32 * 1024;
const MAX_HTTP1_BUFFER: usize = 64 * 1024;
/// HTTP/2: streams per connection (Prometheus uses one) and send buffer per stream.
const MAX_HTTP2_STREAMS: u32 = 16;
const MAX_HTTP2_SEND_BUFFER: usize = 64 * 1024;
const MAX_HTTP2_HEADER_LIST: u32 = 16 * 1024;

/// The client's address, for handlers (basic auth queues password checks per address).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What every connection of one listener shares.
pub struct Shared {
    pub app: Router,
    pub limits: ServerLimits,
    pub tls: Option<Arc<TlsSwitch>>,
}

/// Serves one connection until it ends, breaks a timeout, or `kill` fires; `drain` asks it to
/// finish the request in flight and close.
pub async fn run(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    tracker: Arc<Tracker>,
    drain: CancellationToken,
    kill: CancellationToken,
) {
    let io = Tracked { inner: tcp, tracker: Arc::clone(&tracker) };
    tokio::select! {
        biased;
        _ = kill.cancelled() => tracing::debug!(%peer, "connection closed: the server is stopping or making room"),
        why = tracker.expired() => tracing::debug!(%peer, why, "connection closed"),
        served = serve(io, peer, &shared, &tracker, &drain) => {
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        }
    }
}

async fn serve(
    io: Tracked,
    peer: SocketAddr,
    shared: &Shared,
    tracker: &Arc<Tracker>,
    drain: &CancellationToken,
) -> Result<(), String> {
    let service = HttpService { app: shared.app.clone(), peer, tracker: Arc::clone(tracker) };
    let Some(tls) = &shared.tls else {
        // Plain TCP is HTTP/1 only: no h2c, which nothing advertises.
        return drive(http1().serve_connection(TokioIo::new(io), service), drain).await;
    };
    let stream = tokio_rustls::TlsAcceptor::from(tls.current())
        .accept(io)
        .await
        .map_err(|e| format!("TLS handshake failed: {e}"))?;
    if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        tracker.speaks_http2();
        drive(http2().serve_connection(TokioIo::new(stream), service), drain).await
    } else {
        drive(http1().serve_connection(TokioIo::new(stream), service), drain).await
    }
}

fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_header_size(MAX_HTTP1_HEAD)
        .max_buf_size(MAX_HTTP1_BUFFER);
    builder
}

fn http2() -> hyper::server::conn::http2::Builder<TokioExecutor> {
    // hyper's flood protections (reset streams, header sizes, CONTINUATION) stay at their defaults.
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_HTTP2_STREAMS)
        .max_send_buf_size(MAX_HTTP2_SEND_BUFFER)
        .max_header_list_size(MAX_HTTP2_HEADER_LIST);
    builder
}

/// Runs a connection; once `drain` fires, lets it finish what is in flight and close.
async fn drive<C>(connection: C, drain: &CancellationToken) -> Result<(), String>
where
    C: GracefulConnection,
    C::Error: std::fmt::Display,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        done = connection.as_mut() => return done.map_err(|e| e.to_string()),
        _ = drain.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await.map_err(|e| e.to_string())
}

/// The router, with each request counted in flight until its response body is dropped.
#[derive(Clone)]
struct HttpService {
    app: Router,
    peer: SocketAddr,
    tracker: Arc<Tracker>,
}

impl hyper::service::Service<Request<Incoming>> for HttpService {
    type Response = Response<InFlightBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        let in_flight = InFlight::start(Arc::clone(&self.tracker));
        request.extensions_mut().insert(Peer(self.peer));
        let mut app = self.app.clone();
        Box::pin(async move {
            // An axum Router is always ready: no poll_ready needed.
            let response = app.call(request.map(AxumBody::new)).await?;
            Ok(response.map(|body| InFlightBody { body, _in_flight: in_flight }))
        })
    }
}

/// A response body that keeps its request counted in flight until it is sent or dropped.
pub struct InFlightBody {
    body: AxumBody,
    _in_flight: InFlight,
}

impl http_body::Body for InFlightBody {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

struct InFlight(Arc<Tracker>);

impl InFlight {
    fn start(tracker: Arc<Tracker>) -> InFlight {
        tracker.update(|s, now| {
            if s.in_flight == 0 {
                s.busy_since = now;
                s.read_while_busy = false;
            }
            s.in_flight += 1;
            s.head_started = None;
            if s.http2 {
                // After the preface and first request, HTTP/2 frames (PING, SETTINGS) start no
                // request head: only idle_timeout applies between requests.
                s.track_heads = false;
            }
        });
        InFlight(tracker)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|s, now| {
            s.in_flight = s.in_flight.saturating_sub(1);
            if s.in_flight == 0 {
                s.idle_since = now;
                // HTTP/1: bytes that came in during the response belong to the next request.
                if s.read_while_busy && s.track_heads {
                    s.head_started = Some(now);
                }
            }
        });
    }
}

/// A connection's timing state, shared by its I/O, its requests and its watchdog.
pub struct Tracker {
    start: Instant,
    limits: ServerLimits,
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    busy_since: Duration,
    idle_since: Duration,
    /// A request head (or the handshake) is being read since then.
    head_started: Option<Duration>,
    read_while_busy: bool,
    track_heads: bool,
    http2: bool,
}

impl Tracker {
    pub fn new(limits: ServerLimits) -> Arc<Tracker> {
        // From accept, the client owes a handshake and a request head.
        let state = State { head_started: Some(Duration::ZERO), track_heads: true, ..State::default() };
        Arc::new(Tracker { start: Instant::now(), limits, state: Mutex::new(state), changed: Notify::new() })
    }

    fn update(&self, change: impl FnOnce(&mut State, Duration)) {
        let now = self.start.elapsed();
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()), now);
        self.changed.notify_one();
    }

    fn speaks_http2(&self) {
        self.update(|s, _| s.http2 = true);
    }

    fn on_read(&self) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.in_flight > 0 {
            s.read_while_busy = true;
        } else if s.head_started.is_none() && s.track_heads {
            s.head_started = Some(self.start.elapsed());
            drop(s);
            self.changed.notify_one();
        }
    }

    /// When the connection has no request in flight: since when it has been waiting (for a
    /// request head or for a new request). Such a connection can be closed to make room.
    pub fn idle_since(&self) -> Option<Instant> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        (s.in_flight == 0).then(|| self.start + s.head_started.unwrap_or(s.idle_since).max(s.idle_since))
    }

    fn deadline(&self) -> (Duration, &'static str) {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.in_flight > 0 {
            (s.busy_since + self.limits.write_timeout, "response not delivered within server.write_timeout")
        } else if let Some(started) = s.head_started {
            (started + self.limits.header_read_timeout, "request head not received within server.header_read_timeout")
        } else {
            (s.idle_since + self.limits.idle_timeout, "idle for server.idle_timeout")
        }
    }

    /// Resolves when the connection breaks one of its timeouts, with the rule it broke.
    pub async fn expired(&self) -> &'static str {
        loop {
            let (at, why) = self.deadline();
            let now = self.start.elapsed();
            if now >= at {
                return why;
            }
            tokio::select! {
                _ = tokio::time::sleep(at - now) => {}
                // A request started or ended: the deadline moved.
                _ = self.changed.notified() => {}
            }
        }
    }
}

/// The TCP stream, telling its tracker when bytes come in (under TLS, so a handshake counts).
struct Tracked {
    inner: TcpStream,
    tracker: Arc<Tracker>,
}

impl AsyncRead for Tracked {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.tracker.on_read();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ServerLimits {
        ServerLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(100),
            write_timeout: Duration::from_secs(1000),
        }
    }

    #[test]
    fn each_phase_has_its_own_deadline() {
        let tracker = Tracker::new(limits());
        assert_eq!(tracker.deadline().0, Duration::from_secs(10), "handshake and first head");
        assert!(tracker.idle_since().is_some());
        let request = InFlight::start(Arc::clone(&tracker));
        assert!(tracker.deadline().0 >= Duration::from_secs(1000), "a response in flight");
        assert!(tracker.idle_since().is_none(), "busy connections are never closed to make room");
        drop(request);
        assert!(tracker.deadline().0 >= Duration::from_secs(100), "keep-alive: idle_timeout");
        tracker.on_read();
        assert!(tracker.deadline().0 < Duration::from_secs(11), "a new head has started");
    }

    #[test]
    fn http2_frames_between_requests_start_no_head() {
        let tracker = Tracker::new(limits());
        tracker.speaks_http2();
        drop(InFlight::start(Arc::clone(&tracker)));
        tracker.on_read();
        assert!(tracker.deadline().0 >= Duration::from_secs(100));
    }
}
