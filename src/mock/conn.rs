//! The mock's connections, guarded against clients that would exhaust it: at most
//! `max_connections` at once (further clients wait in the kernel's backlog until one closes),
//! and a connection whose first request's headers have not all arrived within
//! `header_read_timeout` (when set) is closed (a slowloris client sends them a byte at a
//! time, forever).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A listener that enforces the connection cap and the header-read timeout.
pub(super) struct Guarded {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    header_read_timeout: Option<Duration>,
}

impl Guarded {
    pub(super) fn new(
        inner: TcpListener,
        max_connections: usize,
        header_read_timeout: Option<Duration>,
    ) -> Self {
        Guarded {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
            header_read_timeout,
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
        };
        (io, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
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
        let polled = Pin::new(&mut this.tcp).poll_read(cx, buf);
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
