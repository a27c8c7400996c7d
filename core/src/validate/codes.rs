//! Reject codes: validation's own, every policy denial, and the server's own reason.

use automerge::ChangeHash;

use crate::error::ModelError;
use crate::policy::DenyCode;

/// Why a change was rejected. `as_str` is stable (wire protocol, audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectCode {
    /// The bytes are not an Automerge change.
    Malformed,
    /// The change uses an actor reserved for genesis or deterministic creation.
    ForgedActor,
    /// The actor was bound to another account by an earlier change.
    ActorBoundToOther,
    /// The actor's sequence number does not follow its last accepted change.
    SeqGap,
    /// The change's op ids overlap the actor's earlier ops.
    BadStartOp,
    /// A dependency is not accepted (never queued: resubmit after it).
    MissingDependency,
    /// The change has no ops.
    EmptyChange,
    /// An op names an object the document does not have.
    UnknownObject,
    /// An op writes into an object that was deleted or lost a conflict.
    HiddenObject,
    /// An op kind the schema never uses (lists, text, counter increments, marks, inserts; a
    /// counter value is `wrong_type`).
    UnsupportedOp,
    /// A key the schema does not name.
    UnknownKey,
    /// A value of the wrong type.
    WrongType,
    /// A value that breaks a format or range rule.
    InvalidValue,
    /// A value over its size limit.
    TooLong,
    /// A write whose `pred` is not exactly the current value(s): it would create a conflict
    /// or remove someone else's value.
    ConflictingWrite,
    /// Two ops on one key in one change.
    DuplicateKey,
    /// More ops in one change than the document kind allows (`limits::CHANGE_MAX_OPS`,
    /// `limits::CONV_CHANGE_MAX_OPS`).
    TooManyOps,
    /// The policy said no.
    Policy(DenyCode),
    /// The Delivery Service refused an MLS message the change carries
    /// (`e2ee::DsRefusal::code`, one of `DsRefusal::CODES`).
    Mls(&'static str),
    /// A server-built change (a REST intent) does not apply to the document: nothing to
    /// validate. Never sent on the wire: REST answers it per endpoint.
    NotApplicable,
}

impl RejectCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectCode::Malformed => "malformed_change",
            RejectCode::ForgedActor => "forged_actor",
            RejectCode::ActorBoundToOther => "actor_bound_to_other",
            RejectCode::SeqGap => "seq_gap",
            RejectCode::BadStartOp => "bad_start_op",
            RejectCode::MissingDependency => "missing_dependency",
            RejectCode::EmptyChange => "empty_change",
            RejectCode::UnknownObject => "unknown_object",
            RejectCode::HiddenObject => "hidden_object",
            RejectCode::UnsupportedOp => "unsupported_op",
            RejectCode::UnknownKey => "unknown_key",
            RejectCode::WrongType => "wrong_type",
            RejectCode::InvalidValue => "invalid_value",
            RejectCode::TooLong => "too_long",
            RejectCode::ConflictingWrite => "conflicting_write",
            RejectCode::DuplicateKey => "duplicate_key",
            RejectCode::TooManyOps => "too_many_ops",
            RejectCode::Policy(code) => code.as_str(),
            RejectCode::Mls(code) => code,
            RejectCode::NotApplicable => "not_applicable",
        }
    }

    /// Every validation code (policy codes are `DenyCode::ALL`; `NotApplicable` is the
    /// server's own and not a verdict on a submitted change).
    pub const VALIDATION: &'static [RejectCode] = &[
        RejectCode::Malformed,
        RejectCode::ForgedActor,
        RejectCode::ActorBoundToOther,
        RejectCode::SeqGap,
        RejectCode::BadStartOp,
        RejectCode::MissingDependency,
        RejectCode::EmptyChange,
        RejectCode::UnknownObject,
        RejectCode::HiddenObject,
        RejectCode::UnsupportedOp,
        RejectCode::UnknownKey,
        RejectCode::WrongType,
        RejectCode::InvalidValue,
        RejectCode::TooLong,
        RejectCode::ConflictingWrite,
        RejectCode::DuplicateKey,
        RejectCode::TooManyOps,
    ];
}

impl From<&crate::e2ee::DsRefusal> for RejectCode {
    fn from(refusal: &crate::e2ee::DsRefusal) -> Self {
        RejectCode::Mls(refusal.code())
    }
}

impl From<&ModelError> for RejectCode {
    fn from(e: &ModelError) -> Self {
        match e {
            ModelError::TooLong { .. } => RejectCode::TooLong,
            _ => RejectCode::InvalidValue,
        }
    }
}

/// A rejected change: its hash (when it decoded), a code and a reason for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {reason}", code.as_str())]
pub struct Rejection {
    pub hash: Option<ChangeHash>,
    pub code: RejectCode,
    pub reason: String,
}

impl Rejection {
    pub fn new(hash: Option<ChangeHash>, code: RejectCode, reason: String) -> Self {
        Rejection { hash, code, reason }
    }
}
