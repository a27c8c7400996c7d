//! The client: core's `ClientEngine` on a tokio task with a WebSocket transport and a local
//! store. It reconnects with backoff and resubscribes from its cursors; the [`Client`]
//! handle talks to the task through a channel.

use std::time::Duration;

use confab_core::client::host::carry_out_stored;
use confab_core::client::store::block_on_ready;
use confab_core::client::{
    ClientConfig, ClientEngine, ClientError, DeviceInfo, Event, HostKey, Intent, IntentStatus,
    LocalStore, Outcome, Output,
};
use confab_core::ids::{ConvId, DeviceId, DocId, MessageId};
use confab_core::model::message::NewMessage;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ReadTime, ServerFrame, PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::Error;

type Query = Box<dyn FnOnce(&mut ClientEngine) + Send>;

enum Cmd {
    Intent(Box<Intent>, oneshot::Sender<Result<u64, ClientError>>),
    Open(DocId, oneshot::Sender<Result<(), ClientError>>),
    Query(Query),
    Online(bool),
    Token(String),
}

/// A handle to a running client: cheap to clone, every clone drives the same engine. The
/// client's task ends when the last handle is dropped.
///
/// The engine works offline: intents are written to the local store at once and sent when
/// the client is online ([`Client::set_online`]). What changed arrives on [`Client::events`];
/// [`Client::query`] reads the engine (timelines, conversations, statuses).
#[derive(Debug, Clone)]
pub struct Client {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<Event>,
    /// The server's REST side, for the server's part of a search.
    pub(crate) rest: std::sync::Arc<crate::search::Rest>,
}

/// Milliseconds since the Unix epoch: the device clock the engine is given.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A fresh id for a message or conversation: 11 hex digits of the time in milliseconds, then
/// 16 random ones (time-ordered, unique without coordination), after `prefix`.
pub fn new_id(prefix: &str) -> String {
    let mut random = [0u8; 8];
    // Without an OS random source the clock's nanoseconds still spread ids apart.
    if getrandom::fill(&mut random).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        random = nanos.to_le_bytes();
    }
    let mut id = format!("{prefix}{:011x}", now_ms().max(0));
    for b in random {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

// The task has no caller to return to: a store failure there is reported and the engine's
// outputs are drained so it goes on (the engine resends what was not stored).
fn warn(message: &str) {
    eprintln!("confab client: {message}");
}

struct Runner<S> {
    engine: ClientEngine,
    store: S,
    events: broadcast::Sender<Event>,
    token: String,
    /// The device name every `hello` sends.
    device: String,
}

/// The device name of a client started without one ([`Client::start`]).
const NATIVE_DEVICE: &str = "native";

impl<S: LocalStore> Runner<S> {
    /// Carries out the engine's outputs (store writes and loads at once: the stores of this
    /// crate never wait); frames go to `ws` when connected.
    fn flush(&mut self, sends: &mut Vec<ClientFrame>) {
        let outputs = match carry_out_stored(&mut self.engine, &self.store) {
            Ok(outputs) => outputs,
            Err(e) => {
                warn(&e.to_string());
                self.engine.drain()
            }
        };
        for output in outputs {
            match output {
                Output::Send(frame) => sends.push(frame),
                Output::Event(event) => {
                    let _ = self.events.send(event);
                }
                // carry_out_stored carried these out.
                Output::Persist(_) | Output::Load(_) => {}
            }
        }
    }

    fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Intent(intent, reply) => {
                let _ = reply.send(self.engine.intent(*intent, now_ms()));
            }
            Cmd::Open(doc, reply) => {
                let _ = reply.send(self.engine.open(&doc));
            }
            Cmd::Query(f) => f(&mut self.engine),
            Cmd::Token(token) => self.token = token,
            Cmd::Online(_) => {}
        }
    }
}

impl Client {
    /// Starts a client of `config`'s account on `store`, offline: it connects to `url`
    /// (`ws://` or `wss://`, the server's `/ws`) with `token` once [`Client::set_online`]
    /// says so. The stored state is restored before this returns, so the first query sees
    /// it. The client runs on a task of the current tokio runtime (`Error::NoRuntime` outside
    /// one).
    ///
    /// The store must answer at once ([`SqliteStore`](crate::SqliteStore),
    /// [`FileStore`](crate::FileStore), `MemoryStore` do); one store belongs to one account
    /// and device.
    pub fn start<S>(
        config: ClientConfig,
        url: impl Into<String>,
        token: impl Into<String>,
        store: S,
    ) -> Result<Self, Error>
    where
        S: LocalStore + Send + 'static,
    {
        Self::launch(config, None, url.into(), token.into(), store)
    }

    /// [`Client::start`] as the device named `device`, with end-to-end encryption: its MLS
    /// state is restored from `store` (made and saved on first use), its `hello` names
    /// `device`, and on every connection it tops up its key packages in the directory. It
    /// creates encrypted conversations (`Intent::CreateConversation { encrypted: true }`),
    /// seals what it sends into them and opens what it receives (docs/E2EE.md, "On the
    /// device"). One device name per store: two stores under one name conflict in the
    /// directory (`mls_signature_key_mismatch`).
    pub fn start_device<S>(
        config: ClientConfig,
        device: DeviceId,
        url: impl Into<String>,
        token: impl Into<String>,
        store: S,
    ) -> Result<Self, Error>
    where
        S: LocalStore + Send + 'static,
    {
        Self::launch(config, Some(device), url.into(), token.into(), store)
    }

    fn launch<S>(
        config: ClientConfig,
        device: Option<DeviceId>,
        url: String,
        token: String,
        store: S,
    ) -> Result<Self, Error>
    where
        S: LocalStore + Send + 'static,
    {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let mut engine = ClientEngine::restoring(config);
        carry_out_stored(&mut engine, &store)?;
        let hello_device = match &device {
            Some(device) => {
                let saved = block_on_ready(store.scan(HostKey::Mls.key())).ok_or_else(|| {
                    ClientError::Store("the store did not answer at once".into())
                })??;
                engine.attach_device(device.clone(), &saved)?;
                carry_out_stored(&mut engine, &store)?;
                device.to_string()
            }
            None => NATIVE_DEVICE.to_owned(),
        };
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(4096);
        let runner = Runner {
            engine,
            store,
            events: events.clone(),
            token,
            device: hello_device,
        };
        #[cfg(feature = "tls")]
        {
            // rustls needs a process-wide crypto provider; one the application installed
            // first stays (then this is refused, harmlessly).
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let rest = std::sync::Arc::new(crate::search::Rest::new(&url, &runner.token));
        runtime.spawn(run(runner, rx, url));
        Ok(Client { tx, events, rest })
    }

    /// What changes from now on: intent statuses, documents that changed (`Event::Doc`),
    /// memberships, typing, presence, online state. A receiver that falls more than 4,096
    /// events behind skips the oldest (`RecvError::Lagged`); reading the engine again with
    /// [`Client::query`] catches up.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Writes an intent (send a message, create a conversation, add a member, ...) locally
    /// and queues it for the server; returns its id for [`Client::settle`] and
    /// `Event::Intent`. An intent the policy refuses here is `Error::Engine`.
    pub async fn intent(&self, intent: Intent) -> Result<u64, Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Intent(Box::new(intent), reply)).await?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// Sends a text message from this account to `conv` (an intent: see [`Client::intent`]).
    pub async fn send_text(&self, conv: &ConvId, body: impl Into<String>) -> Result<u64, Error> {
        let account = self.query(|e| e.config().account.clone()).await?;
        let id = MessageId::new(new_id(""))
            .map_err(|e| Error::Engine(ClientError::NotApplicable(format!("message id: {e}"))))?;
        let message = NewMessage::text(id, account, body, now_ms());
        self.intent(Intent::Send {
            conv: conv.clone(),
            message,
        })
        .await
    }

    /// Follows a document: loads it from the store and subscribes to it while online.
    /// Conversations the account is a member of are followed without it (the membership
    /// feed); message buckets are opened here (`bucket_doc` names today's).
    pub async fn open(&self, doc: DocId) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Open(doc, reply)).await?;
        Ok(rx.await.map_err(|_| Error::Stopped)??)
    }

    /// Runs `f` on the engine (on the client's task, between frames) and returns its result:
    /// every read of the engine (`timeline`, `conversations`, `status`, ...) goes through it.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ClientEngine) -> T + Send + 'static,
    ) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        let job: Query = Box::new(move |engine| {
            let _ = reply.send(f(engine));
        });
        self.send(Cmd::Query(job)).await?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Goes online (connect, with backoff while the server is unreachable) or offline.
    pub async fn set_online(&self, online: bool) -> Result<(), Error> {
        self.send(Cmd::Online(online)).await
    }

    /// The token the next connection presents (the current one keeps its session).
    pub async fn set_token(&self, token: impl Into<String>) -> Result<(), Error> {
        let token = token.into();
        self.rest.set_token(&token);
        self.send(Cmd::Token(token)).await
    }

    /// Each member's read marker of `conv` with when it last moved, asked of the server:
    /// its stored time, what REST answers as `last_read_at` (`ClientEngine::read_times`).
    /// `Error::Failed` with `offline` when not connected, or the server's code.
    pub async fn read_times(&self, conv: &ConvId) -> Result<Vec<ReadTime>, Error> {
        // Subscribed before the request starts, so its answer cannot pass unseen.
        let mut events = self.events();
        let conv = conv.clone();
        let request = self.query(move |e| e.read_times(&conv)).await?;
        loop {
            let outcome = match events.recv().await {
                Ok(Event::Done {
                    request: r,
                    outcome,
                }) if r == request => outcome,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return Err(Error::Stopped),
            };
            return match outcome {
                Outcome::ReadTimes { reads } => Ok(reads),
                Outcome::Failed { code, message } => Err(Error::Failed { code, message }),
                other => Err(Error::Failed {
                    code: "invalid_answer".into(),
                    message: format!("read times answered {other:?}"),
                }),
            };
        }
    }

    /// This account's registered devices, asked of the server's directory now: each one's
    /// name, when it registered and last connected, whether it is this device, the key
    /// packages it holds (`ClientEngine::devices` keeps the last list). `Error::Failed` with
    /// `offline` when not connected, `unanswered` when no list came within `wait`.
    pub async fn devices(&self, wait: Duration) -> Result<Vec<DeviceInfo>, Error> {
        // Subscribed before the request starts, so its answer cannot pass unseen.
        let mut events = self.events();
        let online = self
            .query(|e| {
                e.refresh_devices();
                e.is_online()
            })
            .await?;
        if !online {
            return Err(Error::Failed {
                code: "offline".into(),
                message: "the device list is asked of the server".into(),
            });
        }
        let answered = tokio::time::timeout(wait, async {
            loop {
                match events.recv().await {
                    Ok(Event::Devices) => return Ok(()),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Err(Error::Stopped),
                }
            }
        })
        .await;
        match answered {
            Ok(done) => done?,
            Err(_) => {
                return Err(Error::Failed {
                    code: "unanswered".into(),
                    message: format!("no device list within {wait:?}"),
                })
            }
        }
        self.query(|e| e.devices().unwrap_or_default()).await
    }

    /// Removes another device of this account from the server's directory and waits for the
    /// answer; the engine then lists the devices again and takes the removed one out of every
    /// encrypted conversation this device is in (`ClientEngine::remove_device`).
    /// `Error::Failed` with the directory's code when it refused, `unanswered` when no answer
    /// came within `wait`.
    pub async fn remove_device(&self, device: &str, wait: Duration) -> Result<(), Error> {
        let mut events = self.events();
        let name = device.to_owned();
        self.query(move |e| e.remove_device(&name))
            .await?
            .map_err(|e| Error::Failed {
                code: e.code().to_owned(),
                message: e.to_string(),
            })?;
        let answered = tokio::time::timeout(wait, async {
            loop {
                match events.recv().await {
                    Ok(Event::DeviceRemoved {
                        device: removed,
                        refused,
                    }) if removed == device => return Ok(refused),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return Err(Error::Stopped),
                }
            }
        })
        .await;
        match answered {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(code))) => Err(Error::Failed {
                message: format!("the directory did not remove {device}: {code}"),
                code,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Failed {
                code: "unanswered".into(),
                message: format!("no answer to removing {device} within {wait:?}"),
            }),
        }
    }

    /// Waits until the intent is accepted (`None` status: it left the outbox) or rejected;
    /// `Error::Unsettled` after `wait`.
    pub async fn settle(&self, id: u64, wait: Duration) -> Result<Option<IntentStatus>, Error> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = self.query(move |e| e.status(id)).await?;
            match status {
                None | Some(IntentStatus::Rejected { .. }) => return Ok(status),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(Error::Unsettled {
                        id,
                        status,
                        waited: wait,
                    })
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    async fn send(&self, cmd: Cmd) -> Result<(), Error> {
        self.tx.send(cmd).await.map_err(|_| Error::Stopped)
    }
}

/// How long until the engine's `wakeup` (none: nothing, the branch is off).
fn until(wakeup: Option<i64>) -> Duration {
    Duration::from_millis(wakeup.map_or(0, |at| {
        u64::try_from(at.saturating_sub(now_ms())).unwrap_or(0)
    }))
}

fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    // Jitter without a random source: spread by the clock's low bits.
    let jitter = (now_ms().unsigned_abs() % 100) * base / 200;
    Duration::from_millis(base + jitter)
}

async fn run<S: LocalStore>(mut runner: Runner<S>, mut rx: mpsc::Receiver<Cmd>, url: String) {
    let mut want_online = false;
    let mut attempt = 0u32;
    loop {
        let mut sends = Vec::new();
        runner.flush(&mut sends);
        if !want_online {
            // Offline the engine still wakes up: index upkeep, delivery markers.
            let wakeup = runner.engine.next_wakeup();
            tokio::select! {
                () = tokio::time::sleep(until(wakeup)), if wakeup.is_some() => {
                    runner.engine.tick(now_ms());
                }
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Online(on)) => want_online = on,
                    Some(cmd) => runner.handle(cmd),
                    None => return,
                },
            }
            continue;
        }
        let Ok((ws, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            continue;
        };
        let (mut sink, mut stream) = ws.split();
        let hello = ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: runner.token.clone(),
            device: runner.device.clone(),
        };
        if sink
            .send(Message::Binary(encode_client(&hello).into()))
            .await
            .is_err()
        {
            continue;
        }
        let mut welcomed = false;
        loop {
            let mut sends = Vec::new();
            runner.flush(&mut sends);
            if welcomed {
                let mut failed = false;
                for frame in sends {
                    if sink
                        .send(Message::Binary(encode_client(&frame).into()))
                        .await
                        .is_err()
                    {
                        failed = true;
                        break;
                    }
                }
                if failed {
                    break;
                }
            }
            // The engine's retry timer: resends what transient errors or missing answers left.
            let wakeup = runner.engine.next_wakeup();
            tokio::select! {
                () = tokio::time::sleep(until(wakeup)), if wakeup.is_some() => {
                    runner.engine.tick(now_ms());
                }
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Online(false)) => { want_online = false; break; }
                    Some(Cmd::Online(true)) => {}
                    Some(cmd) => runner.handle(cmd),
                    None => return,
                },
                message = stream.next() => {
                    let bytes = match message {
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                        Some(Ok(_)) => continue,
                    };
                    let Ok(frame) = decode_server(&bytes, usize::MAX) else { continue };
                    match frame {
                        ServerFrame::Welcome { .. } => { welcomed = true; attempt = 0; runner.engine.receive(frame, now_ms()); }
                        ServerFrame::Error { fatal: true, .. } => break,
                        other => runner.engine.receive(other, now_ms()),
                    }
                }
            }
        }
        let _ = sink.close().await;
        runner.engine.disconnected();
        if want_online {
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
        }
    }
}
