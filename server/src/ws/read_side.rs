//! The WebSocket reader's stream: tungstenite reads from the shared socket and writes what it
//! answers by itself through the connection's outlet.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::net::outlet::Outlet;
use crate::net::socket::poll_read_shared;

/// The WebSocket reader's view of the socket: reads come from the socket, and what the
/// protocol library writes on its own (pongs, the answer to a close) goes through the
/// connection's outlet, in order with everything else.
#[derive(Debug)]
pub struct ReadSide {
    pub socket: Arc<TcpStream>,
    pub outlet: Arc<Outlet>,
}

impl AsyncRead for ReadSide {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        poll_read_shared(&self.socket, cx, buf)
    }
}

impl AsyncWrite for ReadSide {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        // Whole frames arrive in one call; the outlet queues what the socket does not take.
        match self.outlet.send(&[axum::body::Bytes::copy_from_slice(buf)]) {
            Ok(()) => Poll::Ready(Ok(buf.len())),
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
