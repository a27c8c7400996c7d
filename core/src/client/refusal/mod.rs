//! Refusals for people: every reject code (validation's, the policy's deny codes), every
//! protocol error code and the engine's own codes become a sentence with names and titles
//! ("You were removed from Weekend plans"), while the code stays for programs and the
//! technical text (ids, permission names) stays as the detail.
//!
//! Names come from what the engine holds: the member's nickname in the conversation, the
//! account's profile, a contact's nickname; the id only when none of them is known.

pub(super) mod action;
pub(super) mod sentence;

use crate::model::conversation::{MemberStatus, Role};
use crate::policy::DenyCode;
use crate::protocol::ErrorCode;
use crate::validate::RejectCode;

pub use action::Action;

/// Every code a refused intent can carry, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    /// A verdict on the change: validation or policy (`RejectCode`).
    Reject(RejectCode),
    /// A protocol error the server answered a submit with (`ErrorCode`); the transient ones
    /// are retried, never a verdict, but a host may still show them.
    Server(ErrorCode),
    /// The engine's own failures (`ClientError::code`).
    Local(LocalCode),
}

/// The engine's own codes (`ClientError::code` besides the policy's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LocalCode {
    Corrupt,
    Storage,
    BadLoadAnswer,
    /// A forward of a message of an encrypted conversation into one that is not: the engine
    /// never moves sealed content into the clear (docs/E2EE.md, "Forwarding").
    ForwardOutOfEncrypted,
}

impl LocalCode {
    pub const ALL: &'static [LocalCode] = &[
        LocalCode::Corrupt,
        LocalCode::Storage,
        LocalCode::BadLoadAnswer,
        LocalCode::ForwardOutOfEncrypted,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LocalCode::Corrupt => "corrupt",
            LocalCode::Storage => "storage",
            LocalCode::BadLoadAnswer => "bad_load_answer",
            LocalCode::ForwardOutOfEncrypted => "forward_out_of_encrypted",
        }
    }
}

impl Code {
    /// Every code, for tests and documentation.
    pub fn all() -> Vec<Code> {
        RejectCode::VALIDATION
            .iter()
            .copied()
            .chain(DenyCode::ALL.iter().map(|d| RejectCode::Policy(*d)))
            .chain(
                crate::e2ee::DsRefusal::CODES
                    .iter()
                    .map(|c| RejectCode::Mls(c)),
            )
            .chain([RejectCode::NotApplicable])
            .map(Code::Reject)
            .chain(ErrorCode::ALL.iter().map(|e| Code::Server(*e)))
            .chain(LocalCode::ALL.iter().map(|l| Code::Local(*l)))
            .collect()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Code::Reject(r) => r.as_str(),
            Code::Server(e) => e.as_str(),
            Code::Local(l) => l.as_str(),
        }
    }

    /// The code spelled `text` (as the wire, the outbox and `ClientError::code` spell it).
    pub fn parse(text: &str) -> Option<Code> {
        Code::all().into_iter().find(|c| c.as_str() == text)
    }
}

/// What a sentence may name: who I am here, where, what I tried, and whom it was about.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The conversation as people know it: its title, "your chat with Bob", "this group".
    pub place: String,
    pub my_role: Option<Role>,
    pub my_status: Option<MemberStatus>,
    pub action: Action,
    /// The other member an action is about (add, remove, role), by name.
    pub target: Option<String>,
    pub target_role: Option<Role>,
    pub target_status: Option<MemberStatus>,
    pub slow_mode_seconds: Option<u32>,
}
