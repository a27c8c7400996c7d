//! Proposals: sending one, and answering one (its status moves and a
//! `proposal_response` message goes out).

use confab_core::client::Intent;
use confab_core::model::message::MessageKind;
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::promise;
use crate::client::ConfabClient;
use crate::intents::{bucket_of, locate, send_message};
use crate::js;
use crate::types::{IntentResult, MessageInput, ProposalInput, ResponseInput};

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

    /// Answers a proposal: moves its status and sends a `proposal_response` message.
    #[wasm_bindgen(unchecked_return_type = "Promise<IntentResult>")]
    pub fn respond(&self, conv: String, proposal: String, answer: Ts<ResponseInput>) -> Promise {
        let rt = self.rt.clone();
        let answer = answer.to_rust();
        promise(async move {
            let answer = answer?;
            let payload = answer.to_payload()?;
            let (conv, proposal, bucket) = locate(&rt, &conv, &proposal)?;
            let status =
                confab_core::model::proposal::ProposalResponse::from(answer.response).status();
            let created_at = rt.server_now();
            let id = js::new_id("m");
            let message = MessageInput {
                kind: Some(MessageKind::ProposalResponse.into()),
                body: Some(answer.body.clone().unwrap_or_default()),
                payload: Some(serde_json::Value::String(payload)),
                reply_to: Some(proposal.to_string()),
                ..MessageInput::default()
            }
            .into_core(rt.account(), id.clone(), created_at)?;
            let response_id = confab_core::ids::MessageId::new(id.as_str())
                .map_err(|e| crate::error::Failure::new("invalid_value", e.to_string()))?;
            let intents = vec![
                Intent::AnswerProposal {
                    conv: conv.clone(),
                    proposal,
                    bucket,
                    status,
                },
                Intent::Send {
                    conv: conv.clone(),
                    message,
                },
            ];
            let result = IntentResult {
                conv: Some(conv.to_string()),
                message: Some(id),
                ..IntentResult::default()
            };
            let mut result = crate::intents::run_intents(&rt, intents, result).await?;
            result.bucket = Some(bucket_of(&rt, &conv, &response_id, created_at));
            crate::api::to_js(&result)
        })
    }
}
