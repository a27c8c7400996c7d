//! One WebSocket connection: core's `Session` decides, this module does the I/O.
//!
//! The connection keeps the raw, shared TCP socket (`handshake`, [`crate::net::socket`]): its
//! [`Outlet`] lets a conversation's unit write pushes straight into it. Reading still goes
//! through tungstenite (masking, fragments, control frames, size limits) over a
//! [`ReadSide`](read_side::ReadSide).

mod budget;
mod directory;
mod feed;
mod handshake;
mod read_side;

pub use handshake::upgrade;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use confab_core::ids::{DeviceId, DocId};
use confab_core::policy::Author;
use confab_core::protocol::errors::close;
use confab_core::protocol::{encode_server, Action, ErrorCode, ServerFrame, Session};
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesOrdered;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_bytes::ByteBuf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::WebSocketStream;

use self::read_side::ReadSide;
use crate::clock::now_ms;
use crate::engine::{ConnHandle, Control, SubmitOutcome};
use crate::net::frame::{binary_frame, close_frame};
use crate::net::outlet::{BacklogLimits, Outlet};
use crate::state::AppState;

static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Events of a connection besides what the engine pushes.
enum Local {
    SubscribeFailed(DocId, ErrorCode, String),
    /// A signal was refused (the sender may not read the document).
    SignalFailed(DocId, ErrorCode, String),
    /// The answer to a `buckets` request, or why there is none.
    Buckets(
        DocId,
        Result<crate::store::buckets::BucketPage, (ErrorCode, String)>,
    ),
    /// The answer to a `read_times` request, or why there is none.
    ReadTimes(
        DocId,
        Result<Vec<confab_core::protocol::ReadTime>, (ErrorCode, String)>,
    ),
    /// The account's memberships, or why they could not be read.
    Memberships(Result<Vec<confab_core::protocol::Membership>, (ErrorCode, String)>),
    /// The answer to a directory request (or its error, naming the request's id).
    Directory(ServerFrame),
}

/// A submit's answers, one per change, once its unit has them.
type Answers = BoxFuture<'static, (DocId, Vec<SubmitOutcome>)>;

fn framed(frame: &ServerFrame) -> Bytes {
    binary_frame(&encode_server(frame))
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
        hash: None,
        retry_after_ms: None,
        id: None,
    }
}

/// How long a client may leave its answers unread (over the soft backlog) before the
/// connection ends.
const STALLED: Duration = Duration::from_secs(30);

/// How long a closing connection may take to write what it owes the client.
const CLOSE_FLUSH: Duration = Duration::from_secs(2);

async fn connection(app: AppState, socket: Arc<TcpStream>, part: Vec<u8>) {
    let limits = BacklogLimits {
        hard: app.push_backlog_bytes,
        ..BacklogLimits::default()
    };
    let (outlet, flusher) = Outlet::new(socket.clone(), limits);
    tokio::spawn(flusher);
    // However this task ends (a panic included), the socket closes and units stop pushing.
    let _abort = AbortOnDrop(outlet.clone());
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
        let _ = outlet.send(&[
            framed(&frame),
            close_frame(close::FULL, "too_many_connections"),
        ]);
        outlet.finish(CLOSE_FLUSH).await;
        drop(guard);
        return;
    }
    // Frames above max_frame get their own error; only absurd ones end the connection.
    let hard_limit = app.limits.max_frame_bytes.saturating_mul(4).max(1 << 20);
    // tungstenite zero-fills its whole read buffer before every read (128 KiB by default,
    // a fifth of the server's CPU under many small frames); it grows for big frames anyway.
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard_limit))
        .max_frame_size(Some(hard_limit))
        .read_buffer_size(8 * 1024);
    let reader = ReadSide {
        socket,
        outlet: outlet.clone(),
    };
    let mut stream =
        WebSocketStream::from_partially_read(reader, part, Role::Server, Some(config)).await;

    let conn_id = NEXT_CONN.fetch_add(1, Ordering::Relaxed);
    let mut session = Session::new(app.limits);
    let mut budget = app.budgets.connection();
    let mut claims = crate::claims::ConnectionClaims::default();
    let (control_tx, mut control_rx) = mpsc::channel::<Control>(256);
    let (local_tx, mut local_rx) = mpsc::channel::<Local>(4096);
    // Awaited here, in submit order, so an answer wakes this task directly (no hop through
    // another task: under fan-out every hop waits behind the pushes).
    let mut answers: FuturesOrdered<Answers> = FuturesOrdered::new();
    let mut shutdown = app.shutdown.clone();
    let mut closing: Option<(u16, String)> = None;
    // The membership list was sent once on this connection (a later one is a resync).
    let mut feed_listed = false;

    loop {
        let mut out: Vec<Bytes> = Vec::new();
        tokio::select! {
            message = stream.next() => {
                let bytes = match message {
                    Some(Ok(Message::Binary(b))) => b,
                    Some(Ok(Message::Text(t))) => Bytes::from(t),
                    // A pong to our ping: the client read what was sent before it.
                    Some(Ok(Message::Pong(payload))) => {
                        outlet.pong(&payload);
                        continue;
                    }
                    Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                    Some(Err(e)) => {
                        if matches!(e, tungstenite::Error::Capacity(_)) {
                            // Far beyond max_frame: end this connection, saying why.
                            let _ = outlet.send(&[close_frame(1009, "message too big")]);
                        }
                        break;
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        // tungstenite answers a close on its next write: let it.
                        let _ = stream.flush().await;
                        break;
                    }
                };
                metrics.frame_in();
                // A submit over budget is refused before it is decoded.
                let actions = match budget::refuse_undecoded(&app, &session, &mut budget, &bytes) {
                    Some(refused) => {
                        answers.push_back(refused);
                        Vec::new()
                    }
                    None => session.receive(&bytes, now_ms()),
                };
                for action in actions {
                    match action {
                        Action::Send(frame) => out.push(framed(&frame)),
                        Action::Close { code, reason } => closing = Some((code, reason)),
                        Action::Authenticate { token, device } => {
                            let now = now_ms();
                            let actions = match app.auth.verify_connection(&token, now / 1000, &device) {
                                Ok(identity) => session.authenticated(identity, now),
                                Err(e) => session.auth_failed(e.code(), e.to_string()),
                            };
                            for a in actions {
                                match a {
                                    Action::Send(frame) => out.push(framed(&frame)),
                                    Action::Close { code, reason } => closing = Some((code, reason)),
                                    _ => {}
                                }
                            }
                        }
                        Action::Submit { doc, changes } => {
                            if let Some(author) = author_of(&session) {
                                match budget::admit(&app, &session, &mut budget, &doc, changes.len()) {
                                    Err(refused) => answers.push_back(refused),
                                    // Waits only for room in the unit's queue: submits keep their
                                    // order, and a full queue slows this connection's reading.
                                    Ok(()) => answers.push_back(submit(&app, conn_id, doc, author, changes).await),
                                }
                            }
                        }
                        Action::Signal { doc, kind, data } => match budget::admit_signal(&app, &session, &mut budget, &doc) {
                            // Reported like a signal's other errors: non-fatal, naming the doc.
                            Err(refused) => out.push(framed(&refused)),
                            Ok(()) => dispatch(&app, &session, conn_id, Action::Signal { doc, kind, data }, (&outlet, &control_tx), &local_tx),
                        },
                        Action::Memberships => feed::start(&app, &session, conn_id, (&outlet, &control_tx), &local_tx),
                        directory_request @ (Action::UploadKeyPackages { .. }
                        | Action::ClaimKeyPackages { .. }
                        | Action::ListDevices { .. }
                        | Action::RemoveDevice { .. }) => {
                            let admitted = directory::admit_claim(&mut claims, &directory_request)
                                .and_then(|()| budget::admit_request(&app, &session, &mut budget, &directory_request));
                            match admitted {
                                Err(refused) => out.push(framed(&refused)),
                                Ok(()) => if let Some(identity) = session.identity().cloned() {
                                    let (app, local) = (app.clone(), local_tx.clone());
                                    tokio::spawn(async move {
                                        if let Some(frame) = directory::answer(&app, &identity, directory_request).await {
                                            let _ = local.send(Local::Directory(frame)).await;
                                        }
                                    });
                                },
                            }
                        }
                        other => dispatch(&app, &session, conn_id, other, (&outlet, &control_tx), &local_tx),
                    }
                }
            }
            Some(event) = control_rx.recv() => match event {
                Control::Revoke { doc, code, reason } => {
                    if let Some(Action::Send(frame)) = session.revoke(&doc, code.as_str(), &reason) {
                        out.push(framed(&frame));
                    }
                }
                Control::Lagged(doc) => {
                    out.push(framed(&error_frame(ErrorCode::Lagging, "too slow for the pushes; reconnect", Some(&doc), true)));
                    closing = Some((close::POLICY, "lagging".into()));
                }
                Control::FeedLagged => {
                    out.push(framed(&error_frame(ErrorCode::Lagging, "too slow for the pushes; reconnect", None, true)));
                    closing = Some((close::POLICY, "lagging".into()));
                }
                Control::FeedResync => {
                    if session.is_following() {
                        feed::list(&app, &session, &local_tx);
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
                    let mut frame = error_frame(code, message, Some(&doc), false);
                    if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
                        *retry_after_ms = app.engine.retry_after_ms(code);
                    }
                    out.push(framed(&frame));
                }
                Local::SignalFailed(doc, code, message) => {
                    out.push(framed(&error_frame(code, message, Some(&doc), false)));
                }
                Local::Buckets(doc, Ok(page)) => {
                    out.push(framed(&ServerFrame::Buckets {
                        doc: doc.to_string(),
                        buckets: page.buckets,
                        more: page.more,
                    }));
                }
                Local::ReadTimes(doc, Ok(reads)) => {
                    out.push(framed(&ServerFrame::ReadTimes {
                        doc: doc.to_string(),
                        reads,
                    }));
                }
                Local::Memberships(Ok(list)) => {
                    feed_listed = true;
                    out.extend(feed::pages(list).iter().map(framed));
                }
                // A resync that failed is tried again here: the client asked once and is
                // still registered for pushes.
                Local::Memberships(Err((code, _))) if feed_listed => {
                    feed::resync_later(&app, code, &control_tx);
                }
                Local::Memberships(Err((code, message))) => {
                    feed::stop(&app, &session, conn_id);
                    session.feed_failed();
                    out.push(framed(&feed::failed(&app, code, message)));
                }
                Local::Directory(frame) => out.push(framed(&frame)),
                Local::Buckets(doc, Err((code, message)))
                | Local::ReadTimes(doc, Err((code, message))) => {
                    let mut frame = error_frame(code, message, Some(&doc), false);
                    if let ServerFrame::Error { retry_after_ms, .. } = &mut frame {
                        *retry_after_ms = app.engine.retry_after_ms(code);
                    }
                    out.push(framed(&frame));
                }
            },
            Some((doc, outcomes)) = answers.next(), if !answers.is_empty() => {
                budget::answered(&app, &session, &mut budget, &outcomes);
                out.extend(outcomes.into_iter().map(|o| framed(&outcome_frame(&doc, o))));
            },
            changed = shutdown.changed(), if closing.is_none() => {
                if changed.is_err() || *shutdown.borrow() {
                    // Let in-flight submits finish so every acked change reaches the client.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                    while !answers.is_empty() {
                        match tokio::time::timeout_at(deadline, answers.next()).await {
                            Ok(Some((doc, outcomes))) => out.extend(
                                outcomes.into_iter().map(|o| framed(&outcome_frame(&doc, o))),
                            ),
                            Ok(None) | Err(_) => break,
                        }
                    }
                    out.push(framed(&error_frame(ErrorCode::ShuttingDown, "the server is restarting; reconnect", None, true)));
                    closing = Some((close::GOING_AWAY, "shutting_down".into()));
                }
            }
        }
        metrics.frames_out(out.len());
        if !out.is_empty() && outlet.send(&out).is_err() {
            break;
        }
        if let Some((code, reason)) = closing.take() {
            let _ = outlet.send(&[close_frame(code, &reason)]);
            // Finish the close handshake so the client reads everything before the socket
            // ends: a socket closed under unread data is reset when the client writes (its
            // pongs), and the reset loses what its kernel still held, `lagging` included.
            // A lagging client gets as long as a stalled one to read it.
            let within = if reason == "lagging" {
                STALLED
            } else {
                CLOSE_FLUSH
            };
            let _ = tokio::time::timeout(within, async {
                while let Some(Ok(message)) = stream.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            break;
        }
        // A client that does not read its answers stops being read (back-pressure), and
        // one that reads nothing for long is let go.
        if outlet.backlog_bytes() > 0 && tokio::time::timeout(STALLED, outlet.room()).await.is_err()
        {
            tracing::debug!(conn_id, "the client stopped reading; closing");
            break;
        }
    }
    for doc in session.subscriptions().cloned().collect::<Vec<_>>() {
        app.engine.connection_closed(doc, conn_id).await;
    }
    if session.is_following() {
        feed::stop(&app, &session, conn_id);
    }
    // What is queued (bounded by the backlog limit) still goes out to a client that reads,
    // `lagging` and the close frame included.
    outlet.finish(STALLED).await;
    drop(guard);
}

struct AbortOnDrop(Arc<Outlet>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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
            code: code.as_str().to_owned(),
            reason,
        },
        SubmitOutcome::Failed {
            hash,
            code,
            message,
            retry_after_ms,
        } => {
            let message = match hash {
                Some(h) => format!("change {} not stored: {message}; resubmit", hex::encode(h)),
                None => format!("not stored: {message}; resubmit"),
            };
            ServerFrame::Error {
                code: code.as_str().to_owned(),
                message,
                doc: Some(doc.to_string()),
                fatal: false,
                hash: hash.map(|h| ByteBuf::from(h.to_vec())),
                retry_after_ms,
                id: None,
            }
        }
    }
}

/// The author of what this connection submits: its account, on the device its hello named
/// (when that is a valid device id: an MLS commit must come from it).
fn author_of(session: &Session) -> Option<Author> {
    session.identity().map(|identity| Author {
        account: identity.account.clone(),
        service: identity.service,
        device: DeviceId::new(session.device()).ok(),
    })
}

/// Queues a submit on its unit; the returned future resolves to its answers.
async fn submit(
    app: &AppState,
    conn: u64,
    doc: DocId,
    author: Author,
    changes: Vec<Vec<u8>>,
) -> Answers {
    let count = changes.len();
    let answers = app
        .engine
        .enqueue_submit_from(Some(conn), doc.clone(), author, changes)
        .await;
    async move {
        let outcomes = answers.await.unwrap_or_else(|_| {
            let failed = SubmitOutcome::Failed {
                code: ErrorCode::Internal,
                retry_after_ms: None,
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
    (outlet, control): (&Arc<Outlet>, &mpsc::Sender<Control>),
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
                outlet: outlet.clone(),
                control: control.clone(),
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
            tokio::spawn(async move {
                let refused = engine
                    .signal(doc.clone(), author, conn_id, kind, data)
                    .await;
                if let Err((code, message)) = refused {
                    let _ = local.send(Local::SignalFailed(doc, code, message)).await;
                }
            });
        }
        Action::Buckets { doc, before, limit } => {
            tokio::spawn(async move {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let page = engine.buckets(&doc, &author, before, limit).await;
                let _ = local.send(Local::Buckets(doc, page)).await;
            });
        }
        Action::ReadTimes { doc } => {
            tokio::spawn(async move {
                let reads = engine.read_times(&doc, &author).await;
                let _ = local.send(Local::ReadTimes(doc, reads)).await;
            });
        }
        Action::Send(_)
        | Action::Close { .. }
        | Action::Authenticate { .. }
        | Action::Submit { .. }
        | Action::Memberships
        | Action::UploadKeyPackages { .. }
        | Action::ClaimKeyPackages { .. }
        | Action::ListDevices { .. }
        | Action::RemoveDevice { .. } => {}
    }
}
