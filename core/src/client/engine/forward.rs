//! Forwarding out of an encrypted conversation (docs/E2EE.md, "Forwarding"): a forwarded
//! message carries the content (and the attachment keys) of the one it copies, so a forward
//! from an encrypted conversation into one that is not would give the server that content
//! in the clear. The engine refuses it before anything is written or copied; into an
//! encrypted conversation it is sealed for the target's group as any send is.

use crate::client::engine::{ClientEngine, ClientError};
use crate::client::intent::Intent;
use crate::client::refusal::{Code, LocalCode};
use crate::ids::ConvId;

impl ClientEngine {
    /// Whether a message of `from` may be forwarded into `to`, as this device holds them:
    /// `Err` with the refusal's code when `from` is encrypted and `to` is not. Hosts ask it
    /// before copying a forward's attachments; the `Send` it becomes is checked again.
    pub fn forward_allowed(&self, from: &ConvId, to: &ConvId) -> Result<(), LocalCode> {
        if self.is_encrypted(from) && !self.is_encrypted(to) {
            return Err(LocalCode::ForwardOutOfEncrypted);
        }
        Ok(())
    }

    /// `forward_allowed` as an error of the engine, explained for people.
    pub fn check_forward(&self, from: &ConvId, to: &ConvId) -> Result<(), ClientError> {
        // The refusal's sentence names only the place: any intent on `to` explains it.
        let forward = Intent::Leave { conv: to.clone() };
        self.forward_allowed(from, to)
            .map_err(|code| self.refused_here(&forward, code))
    }

    /// The engine's own refusal `code` of `intent`, explained for people.
    pub(super) fn refused_here(&self, intent: &Intent, code: LocalCode) -> ClientError {
        let code = Code::Local(code);
        ClientError::Denied {
            reason: self.explain(intent, code.as_str()),
            code: code.as_str().to_owned(),
            detail: format!("refused on this device: {}", code.as_str()),
        }
    }
}
