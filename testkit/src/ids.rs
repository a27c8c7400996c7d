//! Ids of the one tenant the suites use. They panic on an invalid literal: they only take
//! literals written in tests.

use confab_core::ids::{AccountId, ConvId, DocId, MessageId, TenantId};
use confab_core::model::conversation::DEFAULT_BUCKET_MS;

/// The tenant of every test.
pub const TENANT: &str = "acme";

pub fn tenant() -> TenantId {
    TenantId::new(TENANT).expect("a valid tenant literal")
}

pub fn acc(s: &str) -> AccountId {
    AccountId::new(s).unwrap_or_else(|e| panic!("account {s:?}: {e}"))
}

pub fn conv_id(s: &str) -> ConvId {
    ConvId::new(s).unwrap_or_else(|e| panic!("conversation {s:?}: {e}"))
}

pub fn msg_id(s: &str) -> MessageId {
    MessageId::new(s).unwrap_or_else(|e| panic!("message {s:?}: {e}"))
}

pub fn conv_doc(c: &ConvId) -> DocId {
    DocId::conv(&tenant(), c)
}

/// The bucket document for a message created at `at` (default bucket width).
pub fn bucket_doc(c: &ConvId, at: i64) -> DocId {
    DocId::msgs(&tenant(), c, at.div_euclid(DEFAULT_BUCKET_MS))
}
