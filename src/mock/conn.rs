//! The mock's connections, guarded against clients that would exhaust it: at most
//! `max_connections` at once (further clients wait in the kernel's backlog until one closes),
//! a connection whose first request's headers have not all arrived within
//! `header_read_timeout` (when set) is closed (a slowloris client sends them a byte at a
//! time, forever), and a kept-alive connection that sits idle for `idle_timeout` (when set)
//! is closed, so that idle clients cannot hold every slot.
//!
//! "Idle" means no request in flight and no bytes arriving. A plain timer on read silence
//! would cut the mock's own deliberate silences (a slow first byte, a stalled or paused
//! stream) and any stream longer than the timeout, so each connection counts its requests in
//! flight ([`Activity`]): [`track_requests`], a middleware, counts a request from its arrival
//! until its response body is finished or dropped, and the idle timer runs only while that
//! count is zero.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::Request;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::middleware::Next;
use axum::response::Response;
use axum::serve::IncomingStream;
use futures::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A listener that enforces the connection cap and the header-read and idle timeouts.
pub(super) struct Guarded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    header_read_timeout: Option<Duration>,
    idle_timeout: Option<Duration>,
}

impl Guarded {
    pub(super) fn new(
        inner: TcpListener,
        max_connections: usize,
        header_read_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> Self {
        Guarded {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            header_read_timeout,
            idle_timeout,
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedIo, SocketAddr) {
        // Wait for a free slot before accepting: past the cap, clients queue in the backlog
        // instead of taking file descriptors.
        let permit = match Arc::clone(&self.permits).acquire_owned().await {
            Ok(p) => p,
            // The semaphore is never closed.
            Err(_) => std::future::pending().await,
        };
        let (tcp, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        // Small SSE frames must leave at once: with Nagle's algorithm a frame can wait for
        // the peer's delayed ACK, and on a paused test clock that idle moment makes tokio
        // jump to the next timer.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
        let io = GuardedIo {
            tcp,
            _permit: permit,
            headers_deadline: self
                .header_read_timeout
                .map(|t| Box::pin(tokio::time::sleep(t))),
            tail: Vec::new(),
            idle_timeout: self.idle_timeout,
            idle_deadline: None,
            activity: Activity::default(),
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// One connection's requests in flight, shared by its [`GuardedIo`] and, through axum's
/// connect info, by [`track_requests`]; cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Activity(Arc<ActivityInner>);

#[derive(Default)]
struct ActivityInner {
    in_flight: AtomicUsize,
    /// The connection's reader, woken when the last request in flight ends so that its idle
    /// timer starts at once.
    reader: AtomicWaker,
}

impl Activity {
    /// Count a request in flight until the guard is dropped.
    fn begin(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }

    fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::SeqCst)
    }
}

impl Connected<IncomingStream<'_, Guarded>> for Activity {
    fn connect_info(stream: IncomingStream<'_, Guarded>) -> Self {
        stream.io().activity.clone()
    }
}

/// A request in flight, from its arrival until its response body is finished or dropped.
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        if inner.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            inner.reader.wake();
        }
    }
}

/// Middleware: count each request in flight on its connection until its response body is
/// done (hyper drops a body once its last frame is written, or when the connection goes).
pub(super) async fn track_requests(req: Request, next: Next) -> Response {
    let guard = req
        .extensions()
        .get::<ConnectInfo<Activity>>()
        .map(|ConnectInfo(a)| a.begin());
    let response = next.run(req).await;
    match guard {
        Some(guard) => response.map(|inner| {
            Body::new(TrackedBody {
                inner,
                _guard: guard,
            })
        }),
        None => response,
    }
}

/// A response body that keeps its request counted in flight while it lives.
struct TrackedBody {
    inner: Body,
    _guard: InFlight,
}

impl HttpBody for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// One guarded connection; its slot is freed when it is dropped.
pub(super) struct GuardedIo {
    tcp: TcpStream,
    _permit: OwnedSemaphorePermit,
    /// Until the first request's headers are complete.
    headers_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The last bytes read, so that a `\r\n\r\n` split across reads is found.
    tail: Vec<u8>,
    idle_timeout: Option<Duration>,
    /// Running while the connection is idle: armed when a read finds nothing to read and no
    /// request is in flight, dropped when bytes arrive or a request is in flight.
    idle_deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    activity: Activity,
}

impl GuardedIo {
    /// After a read that found nothing: run the idle timer while no request is in flight.
    /// `true` when the connection has been idle for the whole timeout.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(timeout) = self.idle_timeout else {
            return false;
        };
        // Register before looking at the count: a request that ends in between still wakes
        // this reader, which then arms the timer.
        self.activity.0.reader.register(cx.waker());
        if self.activity.in_flight() > 0 {
            self.idle_deadline = None;
            return false;
        }
        self.idle_deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)))
            .as_mut()
            .poll(cx)
            .is_ready()
    }
}

impl AsyncRead for GuardedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(deadline) = this.headers_deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request headers did not arrive in time",
            )));
        }
        let before = buf.filled().len();
        // Read before looking at the idle timer: bytes already waiting win over a timer that
        // a paused test clock may have jumped past.
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => this.idle_deadline = None,
            Poll::Pending if this.idle_expired(cx) => {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the connection was idle too long",
                )));
            }
            _ => {}
        }
        if this.headers_deadline.is_some() && matches!(polled, Poll::Ready(Ok(()))) {
            this.tail.extend_from_slice(&buf.filled()[before..]);
            if this.tail.windows(4).any(|w| w == b"\r\n\r\n") {
                this.headers_deadline = None;
                this.tail = Vec::new();
            } else {
                let keep = this.tail.len().saturating_sub(3);
                this.tail.drain(..keep);
            }
        }
        polled
    }
}
impl AsyncWrite for GuardedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}
