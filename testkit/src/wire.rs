//! A raw protocol client over a real WebSocket (frames in, frames out, no engine): what the
//! e2e suites and the bench binaries speak to the server with; catching a [`Device`] up
//! through it.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use confab_core::automerge::{Automerge, Change};
use confab_core::ids::DocId;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, SeqChange, ServerFrame, SnapshotOrder,
    PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub use crate::Answer;

/// One connection.
pub struct Client {
    ws: Ws,
    pub account: String,
    pub tenant: String,
    pub server_time: i64,
    inbox: VecDeque<ServerFrame>,
    /// Set once the server closed the connection.
    pub closed: Option<(u16, String)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

pub const WAIT: Duration = Duration::from_secs(20);

impl Client {
    /// Opens a WebSocket without saying hello (attack tests).
    pub async fn raw(url: &str) -> Result<Self> {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("websocket connect")?;
        Ok(Client {
            ws,
            account: String::new(),
            tenant: String::new(),
            server_time: 0,
            inbox: VecDeque::new(),
            closed: None,
        })
    }

    /// Connects and authenticates.
    pub async fn connect(url: &str, token: &str) -> Result<Self> {
        let client = Self::raw(url).await?;
        client.hello(token).await
    }

    /// Connects and authenticates as `device` (the hello's `device`).
    pub async fn connect_device(url: &str, token: &str, device: &str) -> Result<Self> {
        let client = Self::raw(url).await?;
        client.hello_as(token, device).await
    }

    /// Sends a directory request and waits for its answer: the frame naming its `id` (an
    /// answer, or an `error` with that id).
    pub async fn request(&mut self, frame: &ClientFrame) -> Result<ServerFrame> {
        let want = match frame {
            ClientFrame::UploadKeyPackages { id, .. }
            | ClientFrame::ClaimKeyPackages { id, .. }
            | ClientFrame::ListDevices { id, .. }
            | ClientFrame::RemoveDevice { id, .. } => *id,
            other => bail!("not a directory request: {other:?}"),
        };
        self.send(frame).await?;
        self.wait_for(WAIT, |f| {
            let id = match f {
                ServerFrame::KeyPackagesStored { id, .. }
                | ServerFrame::KeyPackages { id, .. }
                | ServerFrame::Devices { id, .. }
                | ServerFrame::DeviceRemoved { id } => Some(*id),
                ServerFrame::Error { id, .. } => *id,
                _ => None,
            };
            (id == Some(want)).then(|| f.clone())
        })
        .await
    }

    /// Connects and authenticates over a socket whose receive buffer is set to `bytes`
    /// before connecting (so the window scale allows it): a client whose kernel can hold
    /// much that its application has not read. Returns the buffer the kernel granted.
    pub async fn connect_with_recv_buffer(
        url: &str,
        token: &str,
        bytes: u32,
    ) -> Result<(Self, u32)> {
        let uri: tokio_tungstenite::tungstenite::http::Uri = url.parse().context("url")?;
        let host = uri.host().context("url without a host")?;
        let addr = tokio::net::lookup_host((host, uri.port_u16().unwrap_or(80)))
            .await?
            .next()
            .context("url host does not resolve")?;
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_recv_buffer_size(bytes)?;
        let granted = socket.recv_buffer_size()?;
        let tcp = socket.connect(addr).await.context("tcp connect")?;
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .context("websocket connect")?;
        let client = Client {
            ws,
            account: String::new(),
            tenant: String::new(),
            server_time: 0,
            inbox: VecDeque::new(),
            closed: None,
        };
        Ok((client.hello(token).await?, granted))
    }

    async fn hello(self, token: &str) -> Result<Self> {
        self.hello_as(token, crate::device::DEVICE).await
    }

    async fn hello_as(mut self, token: &str, device: &str) -> Result<Self> {
        self.send(&ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: token.to_owned(),
            device: device.to_owned(),
        })
        .await?;
        match self.recv(WAIT).await? {
            ServerFrame::Welcome {
                account,
                tenant,
                server_time,
                ..
            } => {
                self.account = account;
                self.tenant = tenant;
                self.server_time = server_time;
                Ok(self)
            }
            ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
            other => bail!("expected welcome, got {other:?}"),
        }
    }

    pub async fn send(&mut self, frame: &ClientFrame) -> Result<()> {
        self.send_bytes(encode_client(frame)).await
    }

    pub async fn send_bytes(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .context("websocket send")
    }

    /// The next frame from the server (queued ones first).
    pub async fn recv(&mut self, wait: Duration) -> Result<ServerFrame> {
        if let Some(frame) = self.inbox.pop_front() {
            return Ok(frame);
        }
        self.read(wait).await
    }

    async fn read(&mut self, wait: Duration) -> Result<ServerFrame> {
        loop {
            let message = tokio::time::timeout(wait, self.ws.next())
                .await
                .map_err(|_| anyhow!("no frame within {wait:?}"))?;
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    return decode_server(&bytes, usize::MAX).map_err(|e| anyhow!("{e}"))
                }
                Some(Ok(Message::Close(frame))) => {
                    self.closed = Some(frame.map_or((1005, String::new()), |f| {
                        (f.code.into(), f.reason.to_string())
                    }));
                    bail!("connection closed: {:?}", self.closed);
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => bail!("websocket: {e}"),
                None => bail!("connection ended"),
            }
        }
    }

    /// Reads until `pick` accepts a frame; frames it declines stay queued in order.
    pub async fn wait_for<T>(
        &mut self,
        wait: Duration,
        mut pick: impl FnMut(&ServerFrame) -> Option<T>,
    ) -> Result<T> {
        let mut kept = VecDeque::new();
        let mut found = None;
        while let Some(frame) = self.inbox.pop_front() {
            if found.is_none() {
                if let Some(t) = pick(&frame) {
                    found = Some(t);
                    continue;
                }
            }
            kept.push_back(frame);
        }
        self.inbox = kept;
        if let Some(t) = found {
            return Ok(t);
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self.read(left.max(Duration::from_millis(1))).await?;
            if let Some(t) = pick(&frame) {
                return Ok(t);
            }
            self.inbox.push_back(frame);
        }
    }

    /// Submits changes in one frame and waits for one answer per change.
    pub async fn submit(&mut self, doc: &DocId, changes: &[Change]) -> Result<Vec<Answer>> {
        let bytes: Vec<ByteBuf> = changes
            .iter()
            .map(|c| ByteBuf::from(c.raw_bytes().to_vec()))
            .collect();
        self.submit_raw(doc, bytes).await
    }

    /// Submits raw bytes as changes.
    pub async fn submit_raw(&mut self, doc: &DocId, changes: Vec<ByteBuf>) -> Result<Vec<Answer>> {
        let count = changes.len();
        let doc_text = doc.to_string();
        self.send(&ClientFrame::Submit {
            doc: doc_text.clone(),
            changes,
        })
        .await?;
        let mut answers = Vec::with_capacity(count);
        while answers.len() < count {
            let answer = self
                .wait_for(WAIT, |frame| match frame {
                    ServerFrame::Ack { doc, hash, seq } if *doc == doc_text => Some(Answer::Ack {
                        hash: hash.to_vec(),
                        seq: *seq,
                    }),
                    ServerFrame::Reject {
                        doc,
                        hash,
                        code,
                        reason,
                    } if *doc == doc_text => Some(Answer::Reject {
                        hash: hash.as_ref().map(|h| h.to_vec()),
                        code: code.clone(),
                        reason: reason.clone(),
                    }),
                    ServerFrame::Error {
                        doc, code, message, ..
                    } if doc.as_deref() == Some(&doc_text) || doc.is_none() => {
                        Some(Answer::Error {
                            code: code.clone(),
                            message: message.clone(),
                        })
                    }
                    _ => None,
                })
                .await?;
            let request_level = matches!(&answer, Answer::Error { code, .. } if code != "internal");
            answers.push(answer.clone());
            if request_level {
                // A refused frame has one answer for all its changes.
                while answers.len() < count {
                    answers.push(answer.clone());
                }
            }
        }
        Ok(answers)
    }

    /// Subscribes and returns the catch-up (changes, or a snapshot) up to `synced`.
    pub async fn subscribe(&mut self, doc: &DocId, after: u64) -> Result<CatchUp> {
        let doc_text = doc.to_string();
        self.send(&ClientFrame::Subscribe {
            doc: doc_text.clone(),
            after,
        })
        .await?;
        let mut catch_up = CatchUp::default();
        loop {
            let frame = self
                .wait_for(WAIT, |frame| match frame {
                    ServerFrame::Changes { doc, .. }
                    | ServerFrame::Snapshot { doc, .. }
                    | ServerFrame::Synced { doc, .. }
                        if *doc == doc_text =>
                    {
                        Some(frame.clone())
                    }
                    ServerFrame::Error { doc, .. } if doc.as_deref() == Some(&doc_text) => {
                        Some(frame.clone())
                    }
                    _ => None,
                })
                .await?;
            match frame {
                ServerFrame::Changes { changes, .. } => catch_up.changes.extend(changes),
                ServerFrame::Snapshot {
                    seq, data, order, ..
                } => {
                    catch_up.snapshot = Some((seq, data.into_vec()));
                    catch_up.order = order;
                }
                ServerFrame::Synced { seq, .. } => {
                    catch_up.synced = seq;
                    return Ok(catch_up);
                }
                ServerFrame::Error { code, message, .. } => bail!("{code}: {message}"),
                _ => {}
            }
        }
    }

    /// Waits for pushed changes of `doc` until the one with `seq` arrived.
    pub async fn pushes_until(&mut self, doc: &DocId, seq: u64) -> Result<Vec<SeqChange>> {
        let doc_text = doc.to_string();
        let mut out = Vec::new();
        while out.last().is_none_or(|c: &SeqChange| c.seq < seq) {
            let changes = self
                .wait_for(WAIT, |frame| match frame {
                    ServerFrame::Changes { doc, changes } if *doc == doc_text => {
                        Some(changes.clone())
                    }
                    _ => None,
                })
                .await?;
            out.extend(changes);
        }
        Ok(out)
    }

    /// Frames received but not yet consumed.
    pub fn pending(&self) -> &VecDeque<ServerFrame> {
        &self.inbox
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

/// What a subscribe returned.
#[derive(Debug, Default, Clone)]
pub struct CatchUp {
    pub changes: Vec<SeqChange>,
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// The seqs of the changes a snapshot brings.
    pub order: Option<SnapshotOrder>,
    pub synced: u64,
}

impl Client {
    /// The whole change log of `doc` from a subscription at 0: (seq, change hash) in seq
    /// order. A snapshot catch-up gives the same through its `order` (the saved document
    /// holds every change); a compacted log is an error.
    pub async fn log(&mut self, doc: &DocId) -> Result<Vec<(u64, [u8; 32])>> {
        let catch_up = self.subscribe(doc, 0).await?;
        let mut log = Vec::new();
        if let Some((seq, data)) = &catch_up.snapshot {
            let order = catch_up
                .order
                .as_ref()
                .ok_or_else(|| anyhow!("a snapshot without order"))?;
            if order.from != 1 {
                bail!("the log of {doc} was compacted up to {}", order.from - 1);
            }
            let saved = Automerge::load(data).map_err(|e| anyhow!("{e}"))?;
            let by_start: HashMap<(Vec<u8>, u64), [u8; 32]> = saved
                .get_changes(&[])
                .iter()
                .map(|c| {
                    (
                        (c.actor_id().to_bytes().to_vec(), c.start_op().get()),
                        c.hash().0,
                    )
                })
                .collect();
            for (s, actor, start) in order.entries() {
                let hash = by_start
                    .get(&(actor.to_vec(), start))
                    .ok_or_else(|| anyhow!("seq {s} names a change the snapshot lacks"))?;
                log.push((s, *hash));
            }
            if log.last().map(|l| l.0) != Some(*seq) {
                bail!("the snapshot's order ends before its seq {seq}");
            }
        }
        for c in &catch_up.changes {
            let change = Change::try_from(&c.change[..]).map_err(|e| anyhow!("{e}"))?;
            log.push((c.seq, change.hash().0));
        }
        if log.last().map_or(0, |l| l.0) != catch_up.synced {
            bail!(
                "the catch-up of {doc} does not end at synced {}",
                catch_up.synced
            );
        }
        Ok(log)
    }
}

pub use crate::Device;

/// Catching a [`Device`] up through a [`Client`].
#[allow(async_fn_in_trait)] // Used on the test's own task; no Send bound is wanted.
pub trait DeviceSync {
    /// Subscribes through `client` from this device's cursor and applies the catch-up.
    async fn sync(&mut self, client: &mut Client, id: &DocId) -> Result<u64>;
}

impl DeviceSync for Device {
    async fn sync(&mut self, client: &mut Client, id: &DocId) -> Result<u64> {
        let after = self.cursors.get(id).copied().unwrap_or(0);
        let catch_up = client.subscribe(id, after).await?;
        if let Some((seq, data)) = &catch_up.snapshot {
            self.doc(id)
                .load_incremental(data)
                .map_err(|e| anyhow!("{e}"))?;
            self.cursors.insert(id.clone(), *seq);
        }
        self.apply(id, &catch_up.changes)?;
        Ok(catch_up.synced)
    }
}
