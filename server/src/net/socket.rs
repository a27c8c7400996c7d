//! The TCP side of a WebSocket connection. Every accepted socket is shared (`Arc`) between
//! the HTTP layer, the connection's reader and its [`Outlet`](super::outlet::Outlet), so a
//! conversation's unit can write a push straight into the socket of each subscriber: one
//! non-blocking `send` per subscriber, no task wake-up and no re-framing per connection
//! (measured: docs/BENCHMARKS.md).

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose connections are [`SharedTcp`] (with `TCP_NODELAY`: acks and pushes
/// are small frames that must leave now, not after Nagle's delay).
#[derive(Debug)]
pub struct SharedListener(pub TcpListener);

impl Listener for SharedListener {
    type Io = SharedTcp;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.0.accept().await {
                Ok((tcp, addr)) => {
                    let _ = tcp.set_nodelay(true);
                    return (SharedTcp(Arc::new(tcp)), addr);
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    // Out of file descriptors, most likely: wait for some to close.
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// An accepted socket, shared. Reads and writes go through `&TcpStream` (readiness, then a
/// non-blocking call), which tokio allows from several owners.
#[derive(Debug, Clone)]
pub struct SharedTcp(pub Arc<TcpStream>);

/// What a request learns about its connection: the peer's address and the shared socket
/// (inserted by [`crate::serve`]; `/ws` needs it).
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub socket: Arc<TcpStream>,
}

impl Connected<IncomingStream<'_, SharedListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, SharedListener>) -> Self {
        Peer {
            addr: *stream.remote_addr(),
            socket: stream.io().0.clone(),
        }
    }
}

/// Reads from a shared socket into `buf`.
pub(crate) fn poll_read_shared(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
) -> Poll<io::Result<()>> {
    loop {
        ready!(socket.poll_read_ready(cx))?;
        match socket.try_read(buf.initialize_unfilled()) {
            Ok(n) => {
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            // Readiness was stale; `try_read` cleared it, so the next poll registers.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
}

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_shared(&self.0, cx, buf)
    }
}

/// Waits until the shared socket is writable, then runs `write` on it (again if the
/// readiness was stale).
fn poll_write_shared<T>(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    mut write: impl FnMut(&TcpStream) -> io::Result<T>,
) -> Poll<io::Result<T>> {
    loop {
        ready!(socket.poll_write_ready(cx))?;
        match write(socket) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
}

/// Used by the HTTP layer only (before a WebSocket upgrade, nothing else writes).
impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        poll_write_shared(&self.0, cx, |s| s.try_write(buf))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        poll_write_shared(&self.0, cx, |s| s.try_write_vectored(bufs))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(shutdown(&self.0, std::net::Shutdown::Write))
    }
}

/// Shuts a shared socket down (the file descriptor closes with its last owner).
pub fn shutdown(socket: &TcpStream, how: std::net::Shutdown) -> io::Result<()> {
    match socket2::SockRef::from(socket).shutdown(how) {
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        other => other,
    }
}
