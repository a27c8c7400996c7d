//! The answer to one submitted change, from either acceptor.

/// An ack, a rejection of the change, or (on the wire) an error for the whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Ack {
        hash: Vec<u8>,
        seq: u64,
    },
    Reject {
        hash: Option<Vec<u8>>,
        code: String,
        reason: String,
    },
    Error {
        code: String,
        message: String,
    },
}

impl Answer {
    pub fn code(&self) -> &str {
        match self {
            Answer::Ack { .. } => "ack",
            Answer::Reject { code, .. } | Answer::Error { code, .. } => code,
        }
    }
}
