//! One WebSocket connection: core's `Session` decides, this file does the I/O.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use confab_core::ids::DocId;
use confab_core::policy::Author;
use confab_core::protocol::errors::close;
use confab_core::protocol::{encode_server, Action, ErrorCode, ServerFrame, Session};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio::sync::mpsc;

use crate::engine::{now_ms, ConnHandle, Outbound, SubmitOutcome};
use crate::AppState;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Queued pushes taken into one write at most (bounds one write's memory).
const MAX_FRAMES_PER_WRITE: usize = 64;

/// Events of a connection besides what the engine pushes.
enum Local {
    SubscribeFailed(DocId, ErrorCode, String),
}

/// A submit's answers, one per change, once its unit has them.
type Answers = BoxFuture<'static, (DocId, Vec<SubmitOutcome>)>;

pub async fn upgrade(State(app): State<AppState>, ws: WebSocketUpgrade) -> Response {
    // Frames above max_frame get their own error; only absurd ones end the connection.
    let hard_limit = app.limits.max_frame_bytes.saturating_mul(4).max(1 << 20);
    // tungstenite zero-fills its whole read buffer before every read (128 KiB by default,
    // a fifth of the server's CPU under many small frames); it grows for big frames anyway.
    ws.max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .read_buffer_size(8 * 1024)
        .on_upgrade(move |socket| connection(app, socket))
}

fn encoded(frame: &ServerFrame) -> Bytes {
    Bytes::from(encode_server(frame))
}

fn error_frame(
    code: ErrorCode,
    message: impl Into<String>,
    doc: Option<&DocId>,
    fatal: bool,
) -> ServerFrame {
    ServerFrame::Error {
        code: code.as_str().to_owned(),
        message: message.into(),
        doc: doc.map(|d| d.to_string()),
        fatal,
    }
}

async fn connection(app: AppState, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let metrics = app.engine.metrics().clone();
    let open = app.connections.fetch_add(1, Ordering::SeqCst) + 1;
    metrics.connections.inc();
    let guard = ConnGuard(app.connections.clone(), metrics.clone());
    if open > app.max_connections {
        let frame = error_frame(
            ErrorCode::TooManyConnections,
            "the server is full; retry later",
            None,
            true,
        );
        let _ = sink
            .send(Message::Binary(encode_server(&frame).into()))
            .await;
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: close::FULL,
                reason: "too_many_connections".into(),
            })))
            .await;
        drop(guard);
        return;
    }
    let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(app.limits);
    let (engine_tx, mut engine_rx) = mpsc::channel::<Outbound>(4096);
    let (local_tx, mut local_rx) = mpsc::channel::<Local>(4096);
    // Awaited here, in submit order, so an answer wakes this task directly (no hop through
    // another task: under fan-out every hop waits behind the pushes).
    let mut answers: FuturesOrdered<Answers> = FuturesOrdered::new();
    let mut shutdown = app.shutdown.clone();
    let mut closing: Option<(u16, String)> = None;

    loop {
        let mut out: Vec<Bytes> = Vec::new();
        tokio::select! {
            message = stream.next() => {
                let bytes = match message {
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Err(e)) => {
                        let text = e.to_string();
                        if text.contains("too long") || text.contains("Space limit") {
                            // Far beyond max_frame: end this connection, saying why.
                            let frame = CloseFrame { code: 1009, reason: "message too big".into() };
                            let _ = sink.send(Message::Close(Some(frame))).await;
                        }
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None => break,
                };
                metrics.frame_in();
                for action in session.receive(&bytes, now_ms()) {
                    match action {
                        Action::Send(frame) => out.push(encoded(&frame)),
                        Action::Close { code, reason } => closing = Some((code, reason)),
                        Action::Authenticate { token, device: _ } => {
                            let now = now_ms();
                            let actions = match app.auth.verify(&token, now / 1000) {
                                Ok(identity) => session.authenticated(identity, now),
                                Err(e) => session.auth_failed(e.code(), e.to_string()),
                            };
                            for a in actions {
                                match a {
                                    Action::Send(frame) => out.push(encoded(&frame)),
                                    Action::Close { code, reason } => closing = Some((code, reason)),
                                    _ => {}
                                }
                            }
                        }
                        Action::Submit { doc, changes } => {
                            if let Some(author) = author_of(&session) {
                                // Waits only for room in the unit's queue: submits keep their
                                // order, and a full queue slows this connection's reading.
                                answers.push_back(submit(&app, doc, author, changes).await);
                            }
                        }
                        other => dispatch(&app, &session, conn_id, other, &engine_tx, &local_tx),
                    }
                }
            }
            Some(event) = engine_rx.recv() => {
                // Whatever else is already queued goes out in the same write: when the
                // server is busy, pushes of consecutive commits share one syscall.
                let mut next = Some(event);
                while let Some(event) = next.take() {
                    match event {
                        Outbound::Frame(frame) => out.push(encoded(&frame)),
                        Outbound::Encoded(bytes) => out.push(bytes),
                        Outbound::Revoke { doc, code, reason } => {
                            if let Some(Action::Send(frame)) = session.revoke(&doc, &code, &reason) {
                                out.push(encoded(&frame));
                            }
                        }
                        Outbound::Lagged(doc) => {
                            out.push(encoded(&error_frame(ErrorCode::Lagging, "too slow for the pushes; reconnect", Some(&doc), true)));
                            closing = Some((close::POLICY, "lagging".into()));
                            break;
                        }
                    }
                    if out.len() < MAX_FRAMES_PER_WRITE {
                        next = engine_rx.try_recv().ok();
                    }
                }
            },
            Some(event) = local_rx.recv() => match event {
                Local::SubscribeFailed(doc, code, message) => {
                    session.revoke(&doc, code.as_str(), &message);
                    let id = session.identity().map(|i| i.account.clone());
                    if let Some(account) = id {
                        tracing::debug!(%doc, %account, code = code.as_str(), "subscribe refused");
                    }
                    out.push(encoded(&error_frame(code, message, Some(&doc), false)));
                }
            },
            Some((doc, outcomes)) = answers.next(), if !answers.is_empty() => {
                out.extend(outcomes.into_iter().map(|o| encoded(&outcome_frame(&doc, o))));
            },
            changed = shutdown.changed(), if closing.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    // Let in-flight submits finish so every acked change reaches the client.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while !answers.is_empty() {
                        match tokio::time::timeout_at(deadline, answers.next()).await {
                            Ok(Some((doc, outcomes))) => out.extend(
                                outcomes.into_iter().map(|o| encoded(&outcome_frame(&doc, o))),
                            ),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    out.push(encoded(&error_frame(ErrorCode::ShuttingDown, "the server is restarting; reconnect", None, true)));
                    closing = Some((close::GOING_AWAY, "shutting_down".into()));
                }
            }
        }
        // Queue every frame, then flush once: one write for a burst of acks.
        let mut failed = false;
        let count = out.len();
        metrics.frames_out(count);
        for bytes in out {
            if sink.feed(Message::Binary(bytes)).await.is_err() {
                failed = true;
                break;
            }
        }
        if count > 0 && !failed && sink.flush().await.is_err() {
            failed = true;
        }
        if failed {
            break;
        }
        if let Some((code, reason)) = closing.take() {
            let _ = sink
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })))
                .await;
            // Finish the close handshake so the client reads everything before the socket ends.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            break;
        }
    }
    for doc in session.subscriptions().cloned().collect::<Vec<_>>() {
        app.engine.unsubscribe(doc, conn_id).await;
    }
    drop(guard);
}

struct ConnGuard(Arc<AtomicUsize>, Arc<crate::metrics::Metrics>);

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
        self.1.connections.dec();
    }
}

fn outcome_frame(doc: &DocId, outcome: SubmitOutcome) -> ServerFrame {
    match outcome {
        SubmitOutcome::Ack { hash, seq } => ServerFrame::Ack {
            doc: doc.to_string(),
            hash: ByteBuf::from(hash.to_vec()),
            seq,
        },
        SubmitOutcome::Reject { hash, code, reason } => ServerFrame::Reject {
            doc: doc.to_string(),
            hash: hash.map(|h| ByteBuf::from(h.to_vec())),
            code,
            reason,
        },
        SubmitOutcome::Failed { hash, message } => {
            let message = match hash {
                Some(h) => format!("change {} not stored: {message}; resubmit", hex::encode(h)),
                None => format!("not stored: {message}; resubmit"),
            };
            error_frame(ErrorCode::Internal, message, Some(doc), false)
        }
    }
}

fn author_of(session: &Session) -> Option<Author> {
    session.identity().map(|identity| Author {
        account: identity.account.clone(),
        service: identity.service,
    })
}

/// Queues a submit on its unit; the returned future resolves to its answers.
async fn submit(app: &AppState, doc: DocId, author: Author, changes: Vec<Vec<u8>>) -> Answers {
    let count = changes.len();
    let answers = app
        .engine
        .enqueue_submit(doc.clone(), author, changes)
        .await;
    async move {
        let outcomes = answers.await.unwrap_or_else(|_| {
            let failed = SubmitOutcome::Failed {
                hash: None,
                message: "the conversation's unit stopped".into(),
            };
            vec![failed; count]
        });
        (doc, outcomes)
    }
    .boxed()
}

fn dispatch(
    app: &AppState,
    session: &Session,
    conn_id: u64,
    action: Action,
    engine_tx: &mpsc::Sender<Outbound>,
    local_tx: &mpsc::Sender<Local>,
) {
    let (Some(identity), Some(author)) = (session.identity().cloned(), author_of(session)) else {
        return;
    };
    let engine = app.engine.clone();
    let local = local_tx.clone();
    match action {
        Action::Subscribe { doc, after } => {
            let conn = ConnHandle {
                id: conn_id,
                account: identity.account,
                service: identity.service,
                tx: engine_tx.clone(),
            };
            tokio::spawn(async move {
                if let Err((code, message)) = engine.subscribe(doc.clone(), after, conn).await {
                    let _ = local.send(Local::SubscribeFailed(doc, code, message)).await;
                }
            });
        }
        Action::Unsubscribe { doc } => {
            tokio::spawn(async move { engine.unsubscribe(doc, conn_id).await });
        }
        Action::Signal { doc, kind, data } => {
            tokio::spawn(async move { engine.signal(doc, author, conn_id, kind, data).await });
        }
        Action::Send(_)
        | Action::Close { .. }
        | Action::Authenticate { .. }
        | Action::Submit { .. } => {}
    }
}
