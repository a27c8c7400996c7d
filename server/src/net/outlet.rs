//! A connection's outgoing side: WebSocket frames written straight into the socket by
//! whoever has them (the connection's task for answers, a conversation's unit for pushes
//! to all its subscribers), in one order per connection. A frame the socket does not take
//! now waits in the backlog, which a small flusher task writes out when the socket has
//! room; nothing overtakes the backlog.
//!
//! Why: with one task per connection, a message to a group of 50 woke 49 tasks, each
//! re-framing the same bytes and making its own `send`. Here the unit frames a push once
//! and makes the 49 `send`s itself (measured: docs/BENCHMARKS.md).
//!
//! What the client has not read is counted end to end, not only the backlog: the kernel's
//! buffers between the two applications (the server's send queue, the client's receive
//! queue, several MiB each on Linux with autotuning) would otherwise hide a client that
//! stopped reading. The outlet sends a WebSocket ping after every `ping_every` bytes, its
//! payload the stream offset after it; the client's pong (sent by every WebSocket library
//! when it reads the ping) confirms it read everything up to there. Unread bytes are
//! those sent and not yet confirmed: the push limit and the stall rule judge them.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use tokio::net::TcpStream;
use tokio::sync::Notify;

use super::frame::ping_frame;
use super::socket::shutdown;

/// Why a frame was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The connection is closing or its socket failed.
    #[error("the connection is closed")]
    Closed,
    /// The backlog is over its hard limit: the client does not read its pushes.
    #[error("the connection is too far behind")]
    Lagging,
}

/// Backlog limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BacklogLimits {
    /// Backlog above this: the connection stops reading requests and catch-up waits
    /// (back-pressure). Unread above this for `stall` without the client confirming
    /// anything: pushes are refused (lagging).
    pub soft: usize,
    /// Unread bytes (sent, not confirmed read, see the module documentation) above this:
    /// pushes are refused and the subscriber is told it is lagging.
    pub hard: usize,
    /// See `soft`.
    pub stall: Duration,
}

impl Default for BacklogLimits {
    fn default() -> Self {
        BacklogLimits {
            soft: 256 * 1024,
            hard: 8 * 1024 * 1024,
            stall: Duration::from_secs(30),
        }
    }
}

impl BacklogLimits {
    /// Bytes between two pings: a quarter of the smaller limit (so an honest client's
    /// unconfirmed tail never looks like lagging), within 4 KiB..1 MiB.
    fn ping_every(&self) -> u64 {
        (self.soft.min(self.hard) / 4).clamp(4 * 1024, 1024 * 1024) as u64
    }
}

/// Pings waiting for their pong, at most (a client that reads nothing gets no more).
const MAX_PINGS: usize = 1024;

/// Bytes of a ping frame: a 2-byte header and the 8-byte offset.
const PING_LEN: u64 = 10;

/// Frames per `writev` (Linux takes up to 1024; a few dozen cover any burst).
const MAX_SLICES: usize = 64;

#[derive(Debug, Default)]
struct State {
    /// Frames not yet written, the first maybe partly (its written prefix already cut off).
    backlog: VecDeque<Bytes>,
    backlog_bytes: usize,
    /// No more frames are taken (the connection is ending).
    closed: bool,
    /// The socket failed: every later frame is refused.
    failed: bool,
    /// Bytes taken for the client since the connection opened (pings and the backlog
    /// included).
    sent: u64,
    /// Of `sent`, what the client confirmed it read (by a pong).
    read: u64,
    /// `sent` after each ping not yet answered, oldest first.
    pings: VecDeque<u64>,
    /// `sent` after the last ping.
    pinged_at: u64,
    /// Since when more than the soft limit has been unread with nothing confirmed.
    quiet_since: Option<Instant>,
}

impl State {
    fn unread(&self) -> usize {
        usize::try_from(self.sent - self.read).unwrap_or(usize::MAX)
    }
}

enum Backlog {
    Empty,
    Waiting,
    /// Closed and written, or failed: the flusher ends.
    Done,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Outlet {
    socket: Arc<TcpStream>,
    state: Mutex<State>,
    limits: BacklogLimits,
    /// Wakes the flusher when the backlog gets frames (or the outlet closes).
    backlog_grew: Notify,
    /// Wakes those waiting for the backlog to shrink.
    backlog_shrank: Notify,
}

impl Outlet {
    /// An outlet on `socket`, and the flusher task's future (run it for the connection's
    /// lifetime; it ends once the outlet is closed and its backlog written or abandoned).
    pub fn new(
        socket: Arc<TcpStream>,
        limits: BacklogLimits,
    ) -> (
        Arc<Outlet>,
        impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let outlet = Arc::new(Outlet {
            socket,
            state: Mutex::new(State::default()),
            limits,
            backlog_grew: Notify::new(),
            backlog_shrank: Notify::new(),
        });
        let flusher = outlet.clone().flush_backlog();
        (outlet, flusher)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (every step is one
        // assignment), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `frames` now, in order after everything sent before; what the socket does not
    /// take waits in the backlog. Never waits.
    pub fn send(&self, frames: &[Bytes]) -> Result<(), Refused> {
        self.send_within(frames, usize::MAX)
    }

    /// A push: like [`send`](Self::send), refused when the client is too far behind: more
    /// than the hard limit unread, or more than the soft limit unread while it confirmed
    /// nothing for the stall time.
    pub fn push(&self, frame: &Bytes) -> Result<(), Refused> {
        self.send_within(std::slice::from_ref(frame), self.limits.hard)
    }

    fn send_within(&self, frames: &[Bytes], limit: usize) -> Result<(), Refused> {
        let mut state = self.state();
        if state.closed || state.failed {
            return Err(Refused::Closed);
        }
        if limit != usize::MAX {
            // The backlog too: a client cannot confirm what was never sent.
            if state.unread() > limit || state.backlog_bytes > limit {
                return Err(Refused::Lagging);
            }
            if state
                .quiet_since
                .is_some_and(|t| t.elapsed() > self.limits.stall)
            {
                return Err(Refused::Lagging);
            }
        }
        let with_ping;
        let frames = match self.count_sent(&mut state, frames) {
            Some(ping) => {
                with_ping = frames.iter().cloned().chain([ping]).collect::<Vec<_>>();
                &with_ping[..]
            }
            None => frames,
        };
        let mut rest = frames;
        let mut offset = 0;
        if state.backlog.is_empty() {
            match write_some(&self.socket, frames) {
                Ok((whole, part)) => {
                    rest = &frames[whole..];
                    offset = part;
                }
                Err(_) => {
                    state.failed = true;
                    drop(state);
                    self.backlog_shrank.notify_waiters();
                    return Err(Refused::Closed);
                }
            }
        }
        if rest.is_empty() {
            return Ok(());
        }
        for (i, frame) in rest.iter().enumerate() {
            let frame = if i == 0 {
                frame.slice(offset..)
            } else {
                frame.clone()
            };
            state.backlog_bytes += frame.len();
            state.backlog.push_back(frame);
        }
        drop(state);
        self.backlog_grew.notify_one();
        Ok(())
    }

    /// Counts `frames` as sent; returns a ping to send after them when one is due.
    fn count_sent(&self, state: &mut State, frames: &[Bytes]) -> Option<Bytes> {
        let bytes: usize = frames.iter().map(Bytes::len).sum();
        state.sent += bytes as u64;
        if state.quiet_since.is_none() && state.unread() > self.limits.soft {
            state.quiet_since = Some(Instant::now());
        }
        if state.sent - state.pinged_at < self.limits.ping_every() || state.pings.len() >= MAX_PINGS
        {
            return None;
        }
        state.sent += PING_LEN;
        state.pinged_at = state.sent;
        state.pings.push_back(state.sent);
        Some(ping_frame(&state.sent.to_be_bytes()))
    }

    /// A pong from the client: if it answers one of our pings, everything sent before that
    /// ping was read. Other pongs (unsolicited heartbeats) are ignored.
    pub fn pong(&self, payload: &[u8]) {
        let Ok(offset) = <[u8; 8]>::try_from(payload).map(u64::from_be_bytes) else {
            return;
        };
        let mut state = self.state();
        if !state.pings.contains(&offset) {
            return;
        }
        while state.pings.front().is_some_and(|p| *p <= offset) {
            state.pings.pop_front();
        }
        state.read = state.read.max(offset);
        state.quiet_since = (state.unread() > self.limits.soft).then(Instant::now);
        drop(state);
        self.backlog_shrank.notify_waiters();
    }

    /// Bytes sent and not yet confirmed read by the client (see the module documentation).
    pub fn unread_bytes(&self) -> usize {
        self.state().unread()
    }

    /// Sends `frame` once the backlog is under the soft limit and at most half the hard
    /// limit is unread (catch-up: a slow reader slows its own catch-up, and leaves room
    /// for pushes), waiting at most `within`.
    pub async fn send_with_room(&self, frame: Bytes, within: Duration) -> Result<(), Refused> {
        let room = self.wait_until(|s| {
            (s.backlog_bytes <= self.limits.soft && s.unread() <= self.limits.hard / 2) || s.failed
        });
        tokio::time::timeout(within, room)
            .await
            .map_err(|_| Refused::Lagging)?;
        self.send(&[frame])
    }

    /// Waits until the backlog is at most the soft limit (or the outlet is closed/failed).
    pub async fn room(&self) {
        self.wait_until(|s| s.backlog_bytes <= self.limits.soft || s.failed)
            .await
    }

    /// Bytes waiting in the backlog.
    pub fn backlog_bytes(&self) -> usize {
        self.state().backlog_bytes
    }

    /// Takes no more frames; the flusher still writes out the backlog.
    pub fn close(&self) {
        self.state().closed = true;
        self.backlog_grew.notify_one();
    }

    /// Closes, waits at most `within` for the backlog to be written, and shuts the socket
    /// down (the client then reads everything sent, then the end of the stream).
    pub async fn finish(&self, within: Duration) {
        self.close();
        let _ = tokio::time::timeout(
            within,
            self.wait_until(|s| s.backlog.is_empty() || s.failed),
        )
        .await;
        self.abort();
    }

    /// Drops the backlog, refuses every later frame, ends the flusher and shuts the socket
    /// down at once. Idempotent.
    pub fn abort(&self) {
        {
            let mut state = self.state();
            state.closed = true;
            state.failed = true;
            state.backlog.clear();
            state.backlog_bytes = 0;
        }
        self.backlog_grew.notify_one();
        self.backlog_shrank.notify_waiters();
        let _ = shutdown(&self.socket, std::net::Shutdown::Both);
    }

    async fn wait_until(&self, done: impl Fn(&State) -> bool) {
        loop {
            let shrank = self.backlog_shrank.notified();
            tokio::pin!(shrank);
            // Registered before the check: a wake-up between the two is not lost.
            shrank.as_mut().enable();
            if done(&self.state()) {
                return;
            }
            shrank.await;
        }
    }

    /// The flusher: writes the backlog whenever the socket has room.
    async fn flush_backlog(self: Arc<Self>) {
        loop {
            match self.backlog_status() {
                Backlog::Done => return,
                // notify_one keeps a permit when nobody waits: no frame is missed.
                Backlog::Empty => self.backlog_grew.notified().await,
                Backlog::Waiting => {
                    if self.socket.writable().await.is_err() || self.write_backlog().is_err() {
                        self.fail();
                        return;
                    }
                    self.backlog_shrank.notify_waiters();
                }
            }
        }
    }

    fn backlog_status(&self) -> Backlog {
        let state = self.state();
        if state.failed || (state.closed && state.backlog.is_empty()) {
            Backlog::Done
        } else if state.backlog.is_empty() {
            Backlog::Empty
        } else {
            Backlog::Waiting
        }
    }

    /// Writes what the socket takes of the backlog now.
    fn write_backlog(&self) -> io::Result<()> {
        let mut state = self.state();
        let frames: Vec<Bytes> = state.backlog.iter().take(MAX_SLICES).cloned().collect();
        let (whole, part) = write_some(&self.socket, &frames)?;
        let mut written = 0;
        for _ in 0..whole {
            if let Some(frame) = state.backlog.pop_front() {
                written += frame.len();
            }
        }
        if part > 0 {
            if let Some(front) = state.backlog.front_mut() {
                *front = front.slice(part..);
                written += part;
            }
        }
        state.backlog_bytes -= written;
        Ok(())
    }

    fn fail(&self) {
        self.state().failed = true;
        self.backlog_shrank.notify_waiters();
    }
}

/// Writes as much of `frames` as the socket takes now: (whole frames written, bytes of the
/// next one written). `WouldBlock` is not an error: it means (0, 0) or what went before.
fn write_some(socket: &TcpStream, frames: &[Bytes]) -> io::Result<(usize, usize)> {
    let mut whole = 0;
    let mut part = 0;
    // On the stack: a push to 49 subscribers makes 49 of these calls.
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    while whole < frames.len() {
        let end = frames.len().min(whole + MAX_SLICES);
        slices[0] = IoSlice::new(&frames[whole][part..]);
        for (slot, frame) in slices[1..].iter_mut().zip(&frames[whole + 1..end]) {
            *slot = IoSlice::new(frame);
        }
        let mut n = match socket.try_write_vectored(&slices[..end - whole]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        while n > 0 && whole < frames.len() {
            let left = frames[whole].len() - part;
            if n >= left {
                n -= left;
                whole += 1;
                part = 0;
            } else {
                part += n;
                n = 0;
            }
        }
    }
    Ok((whole, part))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::frame::binary_frame;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A connected pair on 127.0.0.1: the server side as an outlet, the client side raw.
    async fn pair(limits: BacklogLimits) -> (Arc<Outlet>, TcpStream) {
        let (outlet, flusher, client) = pair_without_flusher(limits).await;
        tokio::spawn(flusher);
        (outlet, client)
    }

    async fn pair_without_flusher(
        limits: BacklogLimits,
    ) -> (
        Arc<Outlet>,
        impl std::future::Future<Output = ()> + Send + 'static,
        TcpStream,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (server, _) = accepted.expect("accept");
        let (outlet, flusher) = Outlet::new(Arc::new(server), limits);
        (outlet, flusher, client.expect("connect"))
    }

    /// A binary frame of `len` bytes, header included (126 or 127 for 128 or 129: no frame
    /// has those lengths), that says `i`.
    fn numbered(i: u32, len: usize) -> Bytes {
        let header = match len {
            0..=127 => 2,
            128..=65_539 => 4,
            _ => 10,
        };
        let mut v = vec![(i % 251) as u8; len - header];
        v[..4].copy_from_slice(&i.to_be_bytes());
        binary_frame(&v)
    }

    /// Bytes the outlet took so far (frames and pings).
    fn sent(outlet: &Outlet) -> usize {
        outlet.state().sent as usize
    }

    /// The data in a stream of server frames without its ping frames, and the pings' offsets.
    fn strip_pings(mut stream: &[u8]) -> (Vec<u8>, Vec<u64>) {
        let (mut data, mut pings) = (Vec::new(), Vec::new());
        while stream.len() >= 2 {
            let (header, len) = match stream[1] & 0x7f {
                126 => (4, u16::from_be_bytes([stream[2], stream[3]]) as usize),
                127 => (
                    10,
                    u64::from_be_bytes(stream[2..10].try_into().unwrap()) as usize,
                ),
                n => (2, n as usize),
            };
            let (frame, rest) = stream.split_at(header + len);
            if frame[0] == 0x89 {
                pings.push(u64::from_be_bytes(frame[2..].try_into().unwrap()));
            } else {
                data.extend_from_slice(frame);
            }
            stream = rest;
        }
        assert!(stream.is_empty(), "whole frames");
        (data, pings)
    }

    async fn read_exactly(client: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut out = vec![0u8; n];
        tokio::time::timeout(Duration::from_secs(10), client.read_exact(&mut out))
            .await
            .expect("data within 10 s")
            .expect("read");
        out
    }

    #[tokio::test]
    async fn frames_from_several_writers_arrive_whole_and_in_call_order() {
        let (outlet, mut client) = pair(BacklogLimits::default()).await;
        let frames: Vec<Bytes> = (0..200).map(|i| numbered(i, 100 + i as usize)).collect();
        // Alternate between the connection's own sends and pushes from another task.
        for (i, frame) in frames.iter().enumerate() {
            if i % 2 == 0 {
                outlet.send(std::slice::from_ref(frame)).expect("send");
            } else {
                let (outlet, frame) = (outlet.clone(), frame.clone());
                tokio::spawn(async move { outlet.push(&frame) })
                    .await
                    .expect("task")
                    .expect("push");
            }
        }
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let got = read_exactly(&mut client, sent(&outlet)).await;
        assert_eq!(strip_pings(&got).0, expected);
    }

    #[tokio::test]
    async fn a_client_that_does_not_read_is_lagging_past_the_limit_and_loses_nothing_taken() {
        let limits = BacklogLimits {
            soft: 64 * 1024,
            hard: 1024 * 1024,
            ..BacklogLimits::default()
        };
        let (outlet, mut client) = pair(limits).await;
        let mut taken = Vec::new();
        let mut refused = None;
        // The kernel's buffers (several MB on loopback) would take all of this: the limit
        // counts what the client did not confirm reading.
        for i in 0..20_000u32 {
            let frame = numbered(i, 1000);
            match outlet.push(&frame) {
                Ok(()) => taken.push(frame),
                Err(e) => {
                    refused = Some((i, e));
                    break;
                }
            }
        }
        let (at, why) = refused.expect("pushes are refused once the backlog is over its limit");
        assert_eq!(why, Refused::Lagging);
        let unread = outlet.unread_bytes();
        assert!(unread > limits.hard, "refused only above the hard limit");
        assert!(
            unread <= limits.hard + 1000 + PING_LEN as usize,
            "refused at the limit, not after the kernel's buffers: {unread} unread"
        );
        // The connection's own frames are still taken (they are bounded by what it reads).
        let answer = numbered(u32::MAX, 10);
        outlet.send(std::slice::from_ref(&answer)).expect("send");
        taken.push(answer);
        let expected: Vec<u8> = taken.iter().flat_map(|f| f.to_vec()).collect();
        let got = read_exactly(&mut client, sent(&outlet)).await;
        let (data, pings) = strip_pings(&got);
        assert!(
            data == expected,
            "everything taken arrives, in order ({at} pushes taken)"
        );
        // The flusher wrote the backlog out and woke those waiting for room.
        tokio::time::timeout(Duration::from_secs(5), outlet.room())
            .await
            .expect("room once the client reads");
        assert_eq!(outlet.backlog_bytes(), 0);
        assert_eq!(outlet.push(&numbered(1, 10)), Err(Refused::Lagging));
        // The client answers the last ping: everything before it is read.
        let last = *pings.last().expect("pings every 16 KiB");
        outlet.pong(&last.to_be_bytes());
        assert!(outlet.unread_bytes() < 16 * 1024);
        outlet
            .push(&numbered(1, 10))
            .expect("pushes are taken again");
    }

    #[tokio::test]
    async fn only_pongs_to_our_pings_count_and_a_silent_client_stalls_past_the_soft_limit() {
        let limits = BacklogLimits {
            soft: 64 * 1024,
            hard: 1024 * 1024,
            stall: Duration::from_millis(300),
        };
        let (outlet, mut client) = pair(limits).await;
        let frames: Vec<Bytes> = (0..100).map(|i| numbered(i, 1000)).collect();
        for frame in &frames {
            outlet.push(frame).expect("push");
        }
        let got = read_exactly(&mut client, sent(&outlet)).await;
        let (_, pings) = strip_pings(&got);
        // 100 KB in 1000-byte frames: a ping after every 17 (16 KiB and the next frame).
        assert_eq!(pings.len(), 5, "one ping per 16 KiB");
        let unread = outlet.unread_bytes();
        assert_eq!(unread, sent(&outlet));
        // Unsolicited or forged pongs confirm nothing.
        outlet.pong(b"hi");
        outlet.pong(&(pings[2] + 1).to_be_bytes());
        outlet.pong(&u64::MAX.to_be_bytes());
        assert_eq!(outlet.unread_bytes(), unread);
        // A late pong confirms its ping and every earlier one.
        outlet.pong(&pings[2].to_be_bytes());
        assert_eq!(outlet.unread_bytes(), sent(&outlet) - pings[2] as usize);
        outlet.pong(&pings[1].to_be_bytes());
        assert_eq!(outlet.unread_bytes(), sent(&outlet) - pings[2] as usize);
        // Over the soft limit and silent for longer than the stall time: lagging, though far
        // under the hard limit.
        outlet.pong(&pings[4].to_be_bytes());
        for i in 0..70 {
            outlet
                .push(&numbered(i, 1000))
                .expect("under the hard limit");
        }
        assert!(outlet.unread_bytes() > limits.soft);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(outlet.push(&numbered(0, 1000)), Err(Refused::Lagging));
        // A pong after reading brings it back.
        let got = read_exactly(&mut client, sent(&outlet) - got.len()).await;
        let (_, pings) = strip_pings(&got);
        outlet.pong(&pings.last().expect("pings").to_be_bytes());
        outlet.push(&numbered(0, 1000)).expect("taken again");
    }

    #[tokio::test]
    async fn a_frame_never_overtakes_the_backlog_even_when_the_socket_has_room_again() {
        let (outlet, flusher, mut client) = pair_without_flusher(BacklogLimits::default()).await;
        let mut frames = Vec::new();
        let mut i = 0;
        while outlet.backlog_bytes() == 0 {
            let frame = numbered(i, 1000);
            outlet.send(std::slice::from_ref(&frame)).expect("send");
            frames.push(frame);
            i += 1;
        }
        // The client drains what the socket holds: the socket has room, the backlog waits
        // for its flusher (not running yet).
        let in_socket = sent(&outlet) - outlet.backlog_bytes();
        let mut got = read_exactly(&mut client, in_socket).await;
        let last = numbered(u32::MAX, 10);
        outlet.send(std::slice::from_ref(&last)).expect("send");
        frames.push(last);
        tokio::spawn(flusher);
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        got.extend(read_exactly(&mut client, sent(&outlet) - in_socket).await);
        assert!(strip_pings(&got).0 == expected, "the last frame comes last");
    }

    #[tokio::test]
    async fn finish_writes_the_backlog_then_ends_the_stream_and_refuses_later_frames() {
        let limits = BacklogLimits {
            soft: 1024,
            hard: usize::MAX,
            ..BacklogLimits::default()
        };
        let (outlet, mut client) = pair(limits).await;
        let frames: Vec<Bytes> = (0..3000).map(|i| numbered(i, 2000)).collect();
        outlet.send(&frames).expect("send");
        assert!(
            outlet.backlog_bytes() > 0,
            "6 MB do not fit the socket at once"
        );
        let reader = tokio::spawn(async move {
            let mut all = Vec::new();
            client.read_to_end(&mut all).await.map(|_| all)
        });
        outlet.finish(Duration::from_secs(10)).await;
        let got = reader.await.expect("reader").expect("read to the end");
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.to_vec()).collect();
        let (got, _) = strip_pings(&got);
        assert!(
            got == expected,
            "all {} bytes, then end of stream",
            expected.len()
        );
        assert_eq!(outlet.send(&frames[..1]), Err(Refused::Closed));
        assert_eq!(outlet.push(&frames[0]), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn a_peer_that_went_away_makes_frames_refused_not_queued_forever() {
        let (outlet, client) = pair(BacklogLimits::default()).await;
        drop(client);
        let mut refused = false;
        // The first writes may still be taken by the kernel before the reset arrives.
        for _ in 0..100 {
            if outlet.push(&numbered(0, 1000)) == Err(Refused::Closed) {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(refused, "a reset socket refuses frames");
    }

    #[tokio::test]
    async fn abort_ends_the_stream_at_once_and_refuses_later_frames() {
        let (outlet, mut client) = pair(BacklogLimits::default()).await;
        let frames: Vec<Bytes> = (0..3000).map(|i| numbered(i, 2000)).collect();
        outlet.send(&frames).expect("send");
        outlet.abort();
        assert_eq!(outlet.backlog_bytes(), 0, "the backlog is dropped");
        assert_eq!(outlet.push(&frames[0]), Err(Refused::Closed));
        let mut all = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut all))
            .await
            .expect("the stream ends without waiting for a reader");
        // What the kernel already held may arrive, or the reset may cut it short.
        assert!(
            read.is_err() || all.len() < 6_000_000,
            "not the whole backlog"
        );
        tokio::time::timeout(Duration::from_secs(1), outlet.room())
            .await
            .expect("nobody waits for room on an aborted outlet");
    }
}
