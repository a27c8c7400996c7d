//! Errors of the client engine.

/// Errors of the client engine (a denied intent carries the policy's code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The policy said no: `reason` for people (`refusal`), `detail` the policy's own words.
    #[error("{code}: {reason}")]
    Denied {
        code: String,
        reason: String,
        detail: String,
    },
    #[error("{0}")]
    NotApplicable(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    #[error("the local store failed: {0}")]
    Store(String),
    /// End-to-end encryption could not do what the intent needs (no device attached, MLS
    /// refused).
    #[error("end-to-end encryption: {0}")]
    E2ee(String),
    /// The host answered a load that is not outstanding (unknown, or answered already).
    #[error("load {0} was not asked for, or was answered already")]
    UnknownLoad(u64),
    /// The host's answer holds an entry none of the load's reads asked for.
    #[error("load {load}: the answer holds {key:?}, which none of its reads asked for")]
    StrayEntry { load: u64, key: String },
}

impl ClientError {
    pub fn code(&self) -> &str {
        match self {
            ClientError::Denied { code, .. } => code,
            ClientError::NotApplicable(_) => "not_applicable",
            ClientError::Corrupt(_) => "corrupt",
            ClientError::Store(_) => "storage",
            ClientError::E2ee(_) => "e2ee",
            ClientError::UnknownLoad(_) | ClientError::StrayEntry { .. } => "bad_load_answer",
        }
    }
}
