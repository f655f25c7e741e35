//! Response bodies rendered once per published cycle and shared by every request that reads
//! them: N clients that never read cost one rendering plus their kernel buffers, not N copies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::sync::OnceCell;

use crate::state::Published;

/// Bodies go to hyper in slices of this size. Slices share the rendered buffer, so a
/// connection whose client stops reading holds a few references, never a copy; where hyper
/// copies (non-vectored writes), it copies one slice at a time into a bounded buffer.
const SLICE: usize = 64 * 1024;

/// One rendering per published state (a body, or its compressed form).
pub struct PerPublished<T = Bytes> {
    slot: Mutex<Option<Rendering<T>>>,
}

impl<T> Default for PerPublished<T> {
    fn default() -> Self {
        PerPublished { slot: Mutex::new(None) }
    }
}

/// The state is named by its allocation: the `Weak` keeps that address from being reused
/// while it is held, and unlike an `Arc` it does not keep an old state's data alive.
type Rendering<T> = (Weak<Published>, Arc<OnceCell<T>>);

impl<T: Clone + Send + Sync + 'static> PerPublished<T> {
    /// What `render` makes of `published`, made by the first request that asks (concurrent
    /// ones wait for it instead of starting their own); `None` if rendering failed.
    pub async fn get(
        &self,
        published: &Arc<Published>,
        render: impl FnOnce(&Published) -> T + Send + 'static,
    ) -> Option<T> {
        let cell = {
            let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some((key, cell)) if Weak::ptr_eq(key, &Arc::downgrade(published)) => Arc::clone(cell),
                _ => {
                    let cell = Arc::new(OnceCell::new());
                    *slot = Some((Arc::downgrade(published), Arc::clone(&cell)));
                    cell
                }
            }
        };
        let rendered = cell
            .get_or_try_init(|| {
                let published = Arc::clone(published);
                // Rendering 100k workloads takes a while: keep it off the async workers.
                tokio::task::spawn_blocking(move || render(&published))
            })
            .await;
        match rendered {
            Ok(rendered) => Some(rendered.clone()),
            Err(e) => {
                // Not cached: the next request tries again.
                tracing::error!(error = %e, "rendering a response body failed");
                None
            }
        }
    }
}

/// A body made of shared parts, with an exact length (so HTTP/1 sends Content-Length).
pub struct SharedBody {
    parts: VecDeque<Bytes>,
    remaining: u64,
}

impl SharedBody {
    pub fn new(parts: impl IntoIterator<Item = Bytes>) -> SharedBody {
        let parts: VecDeque<Bytes> = parts.into_iter().filter(|p| !p.is_empty()).collect();
        let remaining = parts.iter().map(|p| p.len() as u64).sum();
        SharedBody { parts, remaining }
    }
}

impl Body for SharedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        let Some(front) = this.parts.front_mut() else {
            return Poll::Ready(None);
        };
        let slice = front.split_to(front.len().min(SLICE));
        if front.is_empty() {
            this.parts.pop_front();
        }
        this.remaining -= slice.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(slice))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_rendering_per_published_state() {
        static RENDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        fn render(_: &Published) -> Bytes {
            RENDERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Bytes::from(vec![b'x'; 3 * SLICE + 1])
        }
        let cache = PerPublished::default();
        let first = Arc::new(Published::default());
        let a = cache.get(&first, render).await.unwrap();
        let b = cache.get(&first, render).await.unwrap();
        assert_eq!(a.as_ptr(), b.as_ptr(), "the same buffer, shared");
        assert_eq!(RENDERS.load(std::sync::atomic::Ordering::SeqCst), 1);
        let second = Arc::new(Published::default());
        cache.get(&second, render).await;
        assert_eq!(RENDERS.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn a_shared_body_is_sliced_without_copies() {
        let shared = Bytes::from(vec![7u8; 2 * SLICE + 5]);
        let mut body = SharedBody::new([Bytes::from_static(b"head\n"), shared.clone(), Bytes::new()]);
        assert_eq!(body.size_hint().exact(), Some(2 * SLICE as u64 + 10));
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let mut sizes = Vec::new();
        while let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) {
            let data = frame.into_data().unwrap();
            if data.len() == SLICE {
                assert!(shared.as_ptr_range().contains(&data.as_ptr()), "a slice of the shared buffer");
            }
            sizes.push(data.len());
        }
        assert_eq!(sizes, vec![5, SLICE, SLICE, 5]);
        assert!(body.is_end_stream());
    }
}
