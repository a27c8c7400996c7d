//! Proposals: sending one, and answering one: one `proposal_response` message, whose
//! acceptance moves the proposal's status in the same commit (docs/POLICY.md, "Proposals").

use confab_core::model::message::MessageKind;
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::promise;
use crate::client::ConfabClient;
use crate::intents::{locate, send_message};
use crate::types::{MessageInput, ProposalInput, ResponseInput};

#[wasm_bindgen]
impl ConfabClient {
    /// Sends a proposal: a `proposal` message carrying the payload.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn propose(
        &self,
        conv: String,
        proposal: Ts<ProposalInput>,
        body: Option<String>,
    ) -> Promise {
        let rt = self.rt.clone();
        let proposal = proposal.to_rust();
        promise(async move {
            let payload = proposal?.to_payload()?;
            let input = MessageInput {
                kind: Some(MessageKind::Proposal.into()),
                body: Some(body.unwrap_or_default()),
                payload: Some(serde_json::Value::String(payload)),
                ..MessageInput::default()
            };
            send_message(&rt, &conv, input).await
        })
    }

    /// Answers a proposal: one intent, the `proposal_response` message replying to it. The
    /// server moves the proposal's status with it, or refuses both (the proposal was
    /// answered already, expired, or is the caller's own).
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn respond(&self, conv: String, proposal: String, answer: Ts<ResponseInput>) -> Promise {
        let rt = self.rt.clone();
        let answer = answer.to_rust();
        promise(async move {
            let answer = answer?;
            let payload = answer.to_payload()?;
            // The proposal must be one the client holds: its answer is checked before it goes.
            let (_, proposal, _) = locate(&rt, &conv, &proposal)?;
            let input = MessageInput {
                kind: Some(MessageKind::ProposalResponse.into()),
                body: Some(answer.body.clone().unwrap_or_default()),
                payload: Some(serde_json::Value::String(payload)),
                reply_to: Some(proposal.to_string()),
                ..MessageInput::default()
            };
            send_message(&rt, &conv, input).await
        })
    }
}
