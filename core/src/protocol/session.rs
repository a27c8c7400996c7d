//! The server side of one connection, sans-io: decodes frames, enforces the order (hello
//! first), the limits and the tenant boundary, and tells the server what to do.

use std::collections::HashSet;

use serde_bytes::ByteBuf;

use super::codec::{decode_client, encode_server};
use super::errors::{close, ErrorCode, ProtocolError};
use super::frames::{
    ClientFrame, ServerFrame, SignalKind, CLAIM_ACCOUNTS_MAX, KEY_PACKAGES_PER_UPLOAD,
    PROTOCOL_VERSION,
};
use crate::e2ee::DeviceIdentity;
use crate::ids::{AccountId, DeviceId, DocId, TenantId};

/// Per-connection limits. Exceeding one refuses only that frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_changes_per_submit: usize,
    pub max_subscriptions: usize,
    /// Frames per second a connection may sustain, and its burst.
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    pub max_signal_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 1 << 20,
            max_changes_per_submit: 1000,
            max_subscriptions: 10_000,
            rate_per_sec: 1000,
            rate_burst: 2000,
            max_signal_bytes: 256,
        }
    }
}

/// Who the connection speaks for, once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: AccountId,
    pub tenant: TenantId,
    pub service: bool,
}

/// What the server must do after a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(ServerFrame),
    /// Verify the token, then call `authenticated` or `auth_failed`.
    Authenticate {
        token: String,
        device: String,
    },
    /// Check read access, send catch-up after `after`, then live pushes.
    Subscribe {
        doc: DocId,
        after: u64,
    },
    Unsubscribe {
        doc: DocId,
    },
    /// Validate and commit each change; answer each with ack or reject.
    Submit {
        doc: DocId,
        changes: Vec<Vec<u8>>,
    },
    /// Check read access, answer with the conversation's bucket parts.
    Buckets {
        doc: DocId,
        before: Option<crate::ids::Bucket>,
        limit: u32,
    },
    /// Check read access, answer with the conversation's read markers and their times.
    ReadTimes {
        doc: DocId,
    },
    /// Start the account's membership feed: register the connection for `membership`
    /// pushes, then list every membership (`memberships` pages).
    Memberships,
    /// Check each key package (`e2ee::ds::check_key_package` against `device`) and store
    /// them for `device`; answer `key_packages_stored` or an error naming `id`.
    UploadKeyPackages {
        id: u64,
        device: DeviceIdentity,
        packages: Vec<Vec<u8>>,
        last_resort: Option<Vec<u8>>,
    },
    /// Claim one key package of every device of `accounts` (of the connection's tenant,
    /// sorted, without repeats); answer `key_packages`.
    ClaimKeyPackages {
        id: u64,
        accounts: Vec<AccountId>,
    },
    /// List the registered devices of `account` (of the connection's tenant).
    ListDevices {
        id: u64,
        account: AccountId,
    },
    /// Remove `device` of the connection's own account; answer `device_removed`.
    RemoveDevice {
        id: u64,
        device: DeviceId,
    },
    /// Relay to the document's other subscribers.
    Signal {
        doc: DocId,
        kind: SignalKind,
        data: Option<String>,
    },
    /// Close the connection after sending what came before.
    Close {
        code: u16,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    AwaitingHello,
    Authenticating,
    Ready(Identity),
    Closed,
}

/// One connection's protocol state.
#[derive(Debug)]
pub struct Session {
    limits: Limits,
    state: State,
    subscriptions: HashSet<DocId>,
    /// The connection follows its account's memberships (asked once per connection).
    following: bool,
    /// The `device` of the hello (checked against the token's `device` claim by the host).
    device: String,
    tokens: f64,
    last_refill_ms: Option<i64>,
}

fn error(code: ErrorCode, message: impl Into<String>, doc: Option<&str>, fatal: bool) -> Action {
    Action::Send(ServerFrame::Error {
        code: code.as_str().to_owned(),
        message: message.into(),
        doc: doc.map(str::to_owned),
        fatal,
        hash: None,
        retry_after_ms: None,
        id: None,
    })
}

/// An error answering the directory request `id`.
fn request_error(id: u64, code: ErrorCode, message: impl Into<String>) -> Action {
    Action::Send(ServerFrame::Error {
        code: code.as_str().to_owned(),
        message: message.into(),
        doc: None,
        fatal: false,
        hash: None,
        retry_after_ms: None,
        id: Some(id),
    })
}

impl Session {
    pub fn new(limits: Limits) -> Self {
        Session {
            limits,
            state: State::AwaitingHello,
            subscriptions: HashSet::new(),
            following: false,
            device: String::new(),
            tokens: f64::from(limits.rate_burst),
            last_refill_ms: None,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn identity(&self) -> Option<&Identity> {
        match &self.state {
            State::Ready(id) => Some(id),
            _ => None,
        }
    }

    /// The `device` the client named in its hello.
    pub fn device(&self) -> &str {
        &self.device
    }

    pub fn is_subscribed(&self, doc: &DocId) -> bool {
        self.subscriptions.contains(doc)
    }

    pub fn subscriptions(&self) -> impl Iterator<Item = &DocId> {
        self.subscriptions.iter()
    }

    /// Whether the connection follows its account's memberships.
    pub fn is_following(&self) -> bool {
        self.following
    }

    /// The membership list could not be read: the client may ask again.
    pub fn feed_failed(&mut self) {
        self.following = false;
    }

    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn close(&mut self, code: ErrorCode, close_code: u16, message: String) -> Vec<Action> {
        self.state = State::Closed;
        vec![
            error(code, message.clone(), None, true),
            Action::Close {
                code: close_code,
                reason: code.as_str().to_owned(),
            },
        ]
    }

    fn take_token(&mut self, now_ms: i64) -> bool {
        let elapsed = self.last_refill_ms.map_or(0.0, |last| {
            (now_ms.saturating_sub(last)).max(0) as f64 / 1000.0
        });
        self.last_refill_ms = Some(now_ms);
        self.tokens = (self.tokens + elapsed * f64::from(self.limits.rate_per_sec))
            .min(f64::from(self.limits.rate_burst));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Handles one binary message from the client.
    pub fn receive(&mut self, bytes: &[u8], now_ms: i64) -> Vec<Action> {
        if self.state == State::Closed {
            return Vec::new();
        }
        if !self.take_token(now_ms) {
            return vec![error(ErrorCode::RateLimited, "slow down", None, false)];
        }
        let frame = match decode_client(bytes, self.limits.max_frame_bytes) {
            Ok(frame) => frame,
            Err(e) => {
                let code = match e {
                    ProtocolError::FrameTooLarge { .. } => ErrorCode::FrameTooLarge,
                    ProtocolError::BadFrame(_) => ErrorCode::BadFrame,
                };
                if matches!(self.state, State::AwaitingHello) {
                    return self.close(code, close::POLICY, e.to_string());
                }
                return vec![error(code, e.to_string(), None, false)];
            }
        };
        self.handle(frame, now_ms)
    }

    fn handle(&mut self, frame: ClientFrame, now_ms: i64) -> Vec<Action> {
        let identity = match (&self.state, frame) {
            (State::AwaitingHello, ClientFrame::Hello { v, token, device }) => {
                if v != PROTOCOL_VERSION {
                    return self.close(
                        ErrorCode::UnsupportedVersion,
                        close::POLICY,
                        format!("server speaks version {PROTOCOL_VERSION}, client {v}"),
                    );
                }
                self.state = State::Authenticating;
                self.device.clone_from(&device);
                return vec![Action::Authenticate { token, device }];
            }
            (State::AwaitingHello, _) => {
                return self.close(
                    ErrorCode::Unauthenticated,
                    close::POLICY,
                    "send hello first".into(),
                )
            }
            (State::Authenticating, _) => {
                return vec![error(
                    ErrorCode::Unauthenticated,
                    "wait for welcome",
                    None,
                    false,
                )]
            }
            (State::Ready(_), ClientFrame::Hello { .. }) => {
                return vec![error(
                    ErrorCode::AlreadyAuthenticated,
                    "hello was accepted already",
                    None,
                    false,
                )]
            }
            (State::Ready(id), frame) => (id.clone(), frame),
            (State::Closed, _) => return Vec::new(),
        };
        let (identity, frame) = identity;
        match frame {
            ClientFrame::Ping { nonce } => vec![Action::Send(ServerFrame::Pong {
                nonce,
                server_time: now_ms,
            })],
            ClientFrame::Subscribe { doc, after } => match self.doc_of(&identity, &doc) {
                Err(e) => vec![*e],
                Ok(id) => {
                    if !self.subscriptions.contains(&id)
                        && self.subscriptions.len() >= self.limits.max_subscriptions
                    {
                        return vec![error(
                            ErrorCode::TooManySubscriptions,
                            format!("at most {}", self.limits.max_subscriptions),
                            Some(&doc),
                            false,
                        )];
                    }
                    self.subscriptions.insert(id.clone());
                    vec![Action::Subscribe { doc: id, after }]
                }
            },
            ClientFrame::Unsubscribe { doc } => match self.doc_of(&identity, &doc) {
                Err(e) => vec![*e],
                Ok(id) => {
                    self.subscriptions.remove(&id);
                    vec![Action::Unsubscribe { doc: id }]
                }
            },
            ClientFrame::Submit { doc, changes } => {
                if changes.len() > self.limits.max_changes_per_submit {
                    return vec![error(
                        ErrorCode::TooManyChanges,
                        format!(
                            "{} changes; at most {}",
                            changes.len(),
                            self.limits.max_changes_per_submit
                        ),
                        Some(&doc),
                        false,
                    )];
                }
                match self.doc_of(&identity, &doc) {
                    Err(e) => vec![*e],
                    Ok(id) => vec![Action::Submit {
                        doc: id,
                        changes: changes.into_iter().map(|c| c.into_vec()).collect(),
                    }],
                }
            }
            ClientFrame::Signal { doc, kind, data } => {
                if data
                    .as_ref()
                    .is_some_and(|d| d.len() > self.limits.max_signal_bytes)
                {
                    return vec![error(
                        ErrorCode::SignalTooLarge,
                        format!("at most {} bytes", self.limits.max_signal_bytes),
                        Some(&doc),
                        false,
                    )];
                }
                match self.doc_of(&identity, &doc) {
                    Err(e) => vec![*e],
                    Ok(id) => vec![Action::Signal {
                        doc: id,
                        kind,
                        data,
                    }],
                }
            }
            ClientFrame::Buckets { doc, before, limit } => {
                match self.conv_doc_of(&identity, &doc, "buckets are listed") {
                    Err(e) => vec![*e],
                    Ok(id) => vec![Action::Buckets {
                        doc: id,
                        before,
                        limit: limit.clamp(1, super::frames::BUCKETS_LIMIT_MAX),
                    }],
                }
            }
            ClientFrame::ReadTimes { doc } => {
                match self.conv_doc_of(&identity, &doc, "read times are kept") {
                    Err(e) => vec![*e],
                    Ok(id) => vec![Action::ReadTimes { doc: id }],
                }
            }
            ClientFrame::Memberships {} if self.following => vec![error(
                ErrorCode::AlreadyFollowing,
                "this connection follows its memberships already; pushes keep coming",
                None,
                false,
            )],
            ClientFrame::Memberships {} => {
                self.following = true;
                vec![Action::Memberships]
            }
            ClientFrame::UploadKeyPackages {
                id,
                packages,
                last_resort,
            } => {
                if packages.len() > KEY_PACKAGES_PER_UPLOAD {
                    return vec![request_error(
                        id,
                        ErrorCode::TooManyKeyPackages,
                        format!(
                            "{} key packages; at most {KEY_PACKAGES_PER_UPLOAD} per frame",
                            packages.len()
                        ),
                    )];
                }
                let device = match DeviceId::new(self.device.as_str()) {
                    Ok(device) => device,
                    Err(e) => {
                        return vec![request_error(
                            id,
                            ErrorCode::InvalidId,
                            format!("the hello's device is not a device id: {e}"),
                        )]
                    }
                };
                vec![Action::UploadKeyPackages {
                    id,
                    device: DeviceIdentity::new(identity.tenant, identity.account, device),
                    packages: packages.into_iter().map(ByteBuf::into_vec).collect(),
                    last_resort: last_resort.map(ByteBuf::into_vec),
                }]
            }
            ClientFrame::ClaimKeyPackages { id, accounts } => {
                if accounts.len() > CLAIM_ACCOUNTS_MAX {
                    return vec![request_error(
                        id,
                        ErrorCode::TooManyAccounts,
                        format!(
                            "{} accounts; at most {CLAIM_ACCOUNTS_MAX} per claim",
                            accounts.len()
                        ),
                    )];
                }
                // Accounts are named inside the connection's tenant: no id reaches another.
                let mut parsed = Vec::with_capacity(accounts.len());
                for account in accounts {
                    match AccountId::new(account.as_str()) {
                        Ok(a) => parsed.push(a),
                        Err(e) => {
                            return vec![request_error(id, ErrorCode::InvalidId, e.to_string())]
                        }
                    }
                }
                parsed.sort();
                parsed.dedup();
                vec![Action::ClaimKeyPackages {
                    id,
                    accounts: parsed,
                }]
            }
            ClientFrame::ListDevices { id, account } => match AccountId::new(account) {
                Ok(account) => vec![Action::ListDevices { id, account }],
                Err(e) => vec![request_error(id, ErrorCode::InvalidId, e.to_string())],
            },
            ClientFrame::RemoveDevice { id, device } => match DeviceId::new(device) {
                Ok(device) => vec![Action::RemoveDevice { id, device }],
                Err(e) => vec![request_error(id, ErrorCode::InvalidId, e.to_string())],
            },
            ClientFrame::Hello { .. } => Vec::new(),
        }
    }

    /// Parses a document id and keeps the connection inside its tenant.
    /// The refusal is boxed: an error frame is large, and this path is the rare one.
    /// `doc_of` for requests only a conversation's `conv` document answers (`what` says
    /// which).
    fn conv_doc_of(
        &self,
        identity: &Identity,
        doc: &str,
        what: &str,
    ) -> Result<DocId, Box<Action>> {
        let id = self.doc_of(identity, doc)?;
        if !matches!(id.target(), crate::ids::DocTarget::Conv(_)) {
            return Err(Box::new(error(
                ErrorCode::InvalidDoc,
                format!("{what} for a conversation's conv document"),
                Some(doc),
                false,
            )));
        }
        Ok(id)
    }

    fn doc_of(&self, identity: &Identity, doc: &str) -> Result<DocId, Box<Action>> {
        let id = DocId::parse(doc).map_err(|e| {
            Box::new(error(
                ErrorCode::InvalidDoc,
                e.to_string(),
                Some(doc),
                false,
            ))
        })?;
        if id.tenant() != &identity.tenant {
            return Err(Box::new(error(
                ErrorCode::WrongTenant,
                "documents of other tenants are out of reach",
                Some(doc),
                false,
            )));
        }
        Ok(id)
    }

    /// The token checked out: welcome the client.
    pub fn authenticated(&mut self, identity: Identity, server_time: i64) -> Vec<Action> {
        if self.state != State::Authenticating {
            return Vec::new();
        }
        let welcome = ServerFrame::Welcome {
            v: PROTOCOL_VERSION,
            account: identity.account.to_string(),
            tenant: identity.tenant.to_string(),
            server_time,
            max_frame: u32::try_from(self.limits.max_frame_bytes).unwrap_or(u32::MAX),
            max_changes: u32::try_from(self.limits.max_changes_per_submit).unwrap_or(u32::MAX),
        };
        self.state = State::Ready(identity);
        vec![Action::Send(welcome)]
    }

    /// The token did not check out: fatal.
    pub fn auth_failed(&mut self, code: ErrorCode, message: String) -> Vec<Action> {
        self.close(code, close::AUTH, message)
    }

    /// The account lost read access: stop pushing `doc` and tell the client.
    pub fn revoke(&mut self, doc: &DocId, code: &str, reason: &str) -> Option<Action> {
        self.subscriptions.remove(doc).then(|| {
            Action::Send(ServerFrame::Revoked {
                doc: doc.to_string(),
                code: code.to_owned(),
                reason: reason.to_owned(),
            })
        })
    }

    /// Encodes a frame for the wire (convenience for servers and tests).
    pub fn encode(frame: &ServerFrame) -> Vec<u8> {
        encode_server(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::codec::{decode_server, encode_client};

    fn identity() -> Identity {
        Identity {
            account: AccountId::new("alice").expect("id"),
            tenant: TenantId::new("acme").expect("id"),
            service: false,
        }
    }

    fn ready() -> Session {
        let mut s = Session::new(Limits::default());
        let hello = encode_client(&ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: "t".into(),
            device: "d".into(),
        });
        assert!(matches!(
            s.receive(&hello, 0).as_slice(),
            [Action::Authenticate { .. }]
        ));
        assert!(matches!(
            s.authenticated(identity(), 5).as_slice(),
            [Action::Send(ServerFrame::Welcome { server_time: 5, .. })]
        ));
        s
    }

    fn error_code(actions: &[Action]) -> Option<(String, bool)> {
        actions.iter().find_map(|a| match a {
            Action::Send(ServerFrame::Error { code, fatal, .. }) => Some((code.clone(), *fatal)),
            _ => None,
        })
    }

    #[test]
    fn frames_round_trip_through_cbor() {
        let frame = ClientFrame::Submit {
            doc: "acme/conv/c1".into(),
            changes: vec![ByteBuf::from(vec![1, 2, 3])],
        };
        let bytes = encode_client(&frame);
        assert_eq!(decode_client(&bytes, 1024), Ok(frame));
        let server = ServerFrame::Ack {
            doc: "acme/conv/c1".into(),
            hash: ByteBuf::from(vec![9; 32]),
            seq: 7,
        };
        assert_eq!(decode_server(&encode_server(&server), 1024), Ok(server));
    }

    #[test]
    fn anything_before_hello_closes_the_connection() {
        let mut s = Session::new(Limits::default());
        let sub = encode_client(&ClientFrame::Subscribe {
            doc: "acme/conv/c1".into(),
            after: 0,
        });
        let out = s.receive(&sub, 0);
        assert_eq!(error_code(&out), Some(("unauthenticated".into(), true)));
        assert!(matches!(
            out.last(),
            Some(Action::Close {
                code: close::POLICY,
                ..
            })
        ));
        assert!(
            s.receive(&sub, 0).is_empty(),
            "closed sessions ignore input"
        );
    }

    #[test]
    fn wrong_version_is_fatal() {
        let mut s = Session::new(Limits::default());
        let hello = encode_client(&ClientFrame::Hello {
            v: 99,
            token: "t".into(),
            device: "d".into(),
        });
        assert_eq!(
            error_code(&s.receive(&hello, 0)),
            Some(("unsupported_version".into(), true))
        );
    }

    #[test]
    fn garbage_and_oversize_frames_only_fail_themselves() {
        let mut s = ready();
        assert_eq!(
            error_code(&s.receive(&[0xff, 0x00, 0x13], 1)),
            Some(("bad_frame".into(), false))
        );
        let big = vec![0u8; Limits::default().max_frame_bytes + 1];
        assert_eq!(
            error_code(&s.receive(&big, 1)),
            Some(("frame_too_large".into(), false))
        );
        let ping = encode_client(&ClientFrame::Ping { nonce: 4 });
        assert_eq!(
            s.receive(&ping, 2),
            vec![Action::Send(ServerFrame::Pong {
                nonce: 4,
                server_time: 2
            })]
        );
    }

    #[test]
    fn other_tenants_and_bad_ids_are_refused() {
        let mut s = ready();
        let other = encode_client(&ClientFrame::Subscribe {
            doc: "evil/conv/c1".into(),
            after: 0,
        });
        assert_eq!(
            error_code(&s.receive(&other, 1)),
            Some(("wrong_tenant".into(), false))
        );
        let bad = encode_client(&ClientFrame::Subscribe {
            doc: "acme/conv/a.b".into(),
            after: 0,
        });
        assert_eq!(
            error_code(&s.receive(&bad, 1)),
            Some(("invalid_doc".into(), false))
        );
        let ok = encode_client(&ClientFrame::Subscribe {
            doc: "acme/conv/c1".into(),
            after: 3,
        });
        assert!(matches!(
            s.receive(&ok, 1).as_slice(),
            [Action::Subscribe { after: 3, .. }]
        ));
    }

    #[test]
    fn memberships_are_followed_once_per_connection() {
        let mut s = ready();
        let ask = encode_client(&ClientFrame::Memberships {});
        assert_eq!(s.receive(&ask, 1), vec![Action::Memberships]);
        assert!(s.is_following());
        assert_eq!(
            error_code(&s.receive(&ask, 2)),
            Some(("already_following".into(), false))
        );
        s.feed_failed();
        assert_eq!(
            s.receive(&ask, 3),
            vec![Action::Memberships],
            "asked again after a failure"
        );
        let mut fresh = Session::new(Limits::default());
        assert_eq!(
            error_code(&fresh.receive(&ask, 0)),
            Some(("unauthenticated".into(), true)),
            "not before hello"
        );
    }

    #[test]
    fn limits_refuse_one_frame_not_the_connection() {
        let limits = Limits {
            max_changes_per_submit: 2,
            rate_per_sec: 1,
            rate_burst: 3,
            ..Limits::default()
        };
        let mut s = Session::new(limits);
        let hello = encode_client(&ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: "t".into(),
            device: "d".into(),
        });
        s.receive(&hello, 0);
        s.authenticated(identity(), 0);
        let submit = encode_client(&ClientFrame::Submit {
            doc: "acme/conv/c1".into(),
            changes: vec![ByteBuf::from(vec![1]); 3],
        });
        assert_eq!(
            error_code(&s.receive(&submit, 0)),
            Some(("too_many_changes".into(), false))
        );
        let ping = encode_client(&ClientFrame::Ping { nonce: 1 });
        assert!(error_code(&s.receive(&ping, 0)).is_none());
        assert_eq!(
            error_code(&s.receive(&ping, 0)),
            Some(("rate_limited".into(), false))
        );
        assert!(
            error_code(&s.receive(&ping, 1500)).is_none(),
            "tokens refill"
        );
    }

    #[test]
    fn directory_requests_are_checked_and_name_their_id() {
        let mut s = ready();
        let code_and_id = |actions: &[Action]| match actions {
            [Action::Send(ServerFrame::Error {
                code, id, fatal, ..
            })] => {
                assert!(!fatal);
                (code.clone(), *id)
            }
            other => panic!("{other:?}"),
        };
        let upload = |id, n| {
            encode_client(&ClientFrame::UploadKeyPackages {
                id,
                packages: vec![ByteBuf::from(vec![1]); n],
                last_resort: None,
            })
        };
        assert_eq!(
            code_and_id(&s.receive(&upload(7, KEY_PACKAGES_PER_UPLOAD + 1), 1)),
            ("too_many_key_packages".into(), Some(7))
        );
        match s.receive(&upload(8, 2), 1).as_slice() {
            [Action::UploadKeyPackages {
                id: 8,
                device,
                packages,
                ..
            }] => {
                assert_eq!(device.to_string(), "acme/alice/d");
                assert_eq!(packages.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        let claim = |accounts: Vec<&str>| {
            encode_client(&ClientFrame::ClaimKeyPackages {
                id: 9,
                accounts: accounts.into_iter().map(str::to_owned).collect(),
            })
        };
        assert_eq!(
            code_and_id(&s.receive(&claim(vec!["a"; CLAIM_ACCOUNTS_MAX + 1]), 1)),
            ("too_many_accounts".into(), Some(9))
        );
        assert_eq!(
            code_and_id(&s.receive(&claim(vec!["bob", "evil/bob"]), 1)),
            ("invalid_id".into(), Some(9))
        );
        match s
            .receive(&claim(vec!["carol", "bob", "carol"]), 1)
            .as_slice()
        {
            [Action::ClaimKeyPackages { accounts, .. }] => {
                let names: Vec<&str> = accounts.iter().map(AccountId::as_str).collect();
                assert_eq!(names, ["bob", "carol"], "sorted, without repeats");
            }
            other => panic!("{other:?}"),
        }
        let remove = encode_client(&ClientFrame::RemoveDevice {
            id: 10,
            device: "a/b".into(),
        });
        assert_eq!(
            code_and_id(&s.receive(&remove, 1)),
            ("invalid_id".into(), Some(10))
        );
        // A hello whose device is no device id: uploads are refused, nothing else is.
        let mut odd = Session::new(Limits::default());
        let hello = encode_client(&ClientFrame::Hello {
            v: PROTOCOL_VERSION,
            token: "t".into(),
            device: "my phone".into(),
        });
        odd.receive(&hello, 0);
        odd.authenticated(identity(), 0);
        assert_eq!(
            code_and_id(&odd.receive(&upload(1, 1), 1)),
            ("invalid_id".into(), Some(1))
        );
    }
}
