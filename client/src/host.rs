//! The native client: core's `ClientEngine` with a tokio WebSocket transport and a
//! `FileStore`. Reconnects with backoff and resubscribes from its cursors. Used by tests,
//! benchmarks and bots.

use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Result};
use confab_core::client::host::carry_out_stored;
use confab_core::client::{
    ClientConfig, ClientEngine, ClientError, Event, Intent, IntentStatus, Output,
};
use confab_core::ids::DocId;
use confab_core::protocol::{
    decode_server, encode_client, ClientFrame, ServerFrame, PROTOCOL_VERSION,
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;

use crate::file_store::FileStore;

type Query = Box<dyn FnOnce(&mut ClientEngine) + Send>;

enum Cmd {
    Intent(Box<Intent>, oneshot::Sender<Result<u64, ClientError>>),
    Open(DocId, oneshot::Sender<Result<(), ClientError>>),
    Query(Query),
    Online(bool),
}

/// A handle to a running native client.
#[derive(Debug, Clone)]
pub struct NativeClient {
    tx: mpsc::Sender<Cmd>,
    events: broadcast::Sender<Event>,
}

fn now_ms() -> i64 {
    crate::now_ms()
}

fn tracing_free_warn(message: &str) {
    eprintln!("confab native client: {message}");
}

struct Runner {
    engine: ClientEngine,
    store: FileStore,
    events: broadcast::Sender<Event>,
}

impl Runner {
    /// Carries out the engine's outputs (store writes and loads at once: the file store
    /// never waits); frames go to `ws` when connected.
    fn flush(&mut self, sends: &mut Vec<ClientFrame>) {
        let outputs = match carry_out_stored(&mut self.engine, &self.store) {
            Ok(outputs) => outputs,
            Err(e) => {
                tracing_free_warn(&e.to_string());
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
            Cmd::Online(_) => {}
        }
    }
}

impl NativeClient {
    /// Starts a client whose data lives in `dir`; it connects when `online` is set.
    pub fn start(config: ClientConfig, url: String, token: String, dir: &Path) -> Result<Self> {
        let store = FileStore::open(dir).map_err(|e| anyhow!("{e}"))?;
        // Restored before it starts: the first query sees the stored state.
        let mut engine = ClientEngine::restoring(config);
        carry_out_stored(&mut engine, &store).map_err(|e| anyhow!("{e}"))?;
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(4096);
        let runner = Runner {
            engine,
            store,
            events: events.clone(),
        };
        tokio::spawn(run(runner, rx, url, token));
        Ok(NativeClient { tx, events })
    }

    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub async fn intent(&self, intent: Intent) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Intent(Box::new(intent), reply))
            .await
            .map_err(|_| anyhow!("client stopped"))?;
        rx.await?.map_err(|e| anyhow!("{}: {e}", e.code()))
    }

    pub async fn open(&self, doc: DocId) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Open(doc, reply))
            .await
            .map_err(|_| anyhow!("client stopped"))?;
        rx.await?.map_err(|e| anyhow!("{e}"))
    }

    /// Reads from the engine.
    pub async fn query<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ClientEngine) -> T + Send + 'static,
    ) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        let job: Query = Box::new(move |engine| {
            let _ = reply.send(f(engine));
        });
        self.tx
            .send(Cmd::Query(job))
            .await
            .map_err(|_| anyhow!("client stopped"))?;
        Ok(rx.await?)
    }

    /// Goes online (connect, with backoff) or offline.
    pub async fn set_online(&self, online: bool) -> Result<()> {
        self.tx
            .send(Cmd::Online(online))
            .await
            .map_err(|_| anyhow!("client stopped"))
    }

    /// Waits until the intent is accepted (`None` status) or rejected.
    pub async fn settle(&self, id: u64, wait: Duration) -> Result<Option<IntentStatus>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let status = self.query(move |e| e.status(id)).await?;
            match status {
                None | Some(IntentStatus::Rejected { .. }) => return Ok(status),
                _ if tokio::time::Instant::now() > deadline => {
                    return Err(anyhow!("intent {id} still {status:?}"))
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }
}

fn backoff(attempt: u32) -> Duration {
    let base = 100u64.saturating_mul(1 << attempt.min(6)).min(5_000);
    // Jitter without a random source: spread by the clock's low bits.
    let jitter = (now_ms().unsigned_abs() % 100) * base / 200;
    Duration::from_millis(base + jitter)
}

async fn run(mut runner: Runner, mut rx: mpsc::Receiver<Cmd>, url: String, token: String) {
    let mut want_online = false;
    let mut attempt = 0u32;
    loop {
        let mut sends = Vec::new();
        runner.flush(&mut sends);
        if !want_online {
            match rx.recv().await {
                Some(Cmd::Online(on)) => want_online = on,
                Some(cmd) => runner.handle(cmd),
                None => return,
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
            token: token.clone(),
            device: "native".into(),
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
            let wait = Duration::from_millis(
                wakeup.map_or(0, |at| u64::try_from(at - now_ms()).unwrap_or(0)),
            );
            tokio::select! {
                () = tokio::time::sleep(wait), if wakeup.is_some() => {
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
