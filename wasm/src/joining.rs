//! Joining (docs/POLICY.md, "Joining") on `ConfabClient`: the pending join requests of a
//! conversation, and answering them. Approving is an add and declining a removal of the
//! request, so `can()` answers them as `addMember` / `removeMember` do; the engine runs the
//! same policy the server does.
//!
//! Asking to join, invite links and discovery are REST calls (`POST …/join-requests`,
//! `…/invites`, `POST /v1/invites/join`): the asker is not a member and holds no replica to
//! write into, and links are checked by the server alone.

use confab_core::client::Intent;
use confab_core::model::conversation::MemberStatus;
use js_sys::Promise;
use tsify::Ts;
use wasm_bindgen::prelude::*;

use crate::api::{account_id, conv_id, promise};
use crate::client::ConfabClient;
use crate::intents::run;
use crate::types::{IntentResult, Member, Role};

#[wasm_bindgen]
impl ConfabClient {
    /// The members of `conv` who asked to join and wait for an answer (status
    /// `requested`), as this device holds the conversation. Every member sees them; only
    /// those who may add answer them.
    #[wasm_bindgen(js_name = joinRequests)]
    pub fn join_requests(&self, conv: &str) -> std::result::Result<Vec<Ts<Member>>, JsValue> {
        let conv = conv_id(conv)?;
        let members = self.rt.read(Vec::new(), |e| {
            e.conversation(&conv)
                .map(|c| {
                    c.members
                        .into_values()
                        .filter(|m| m.status == MemberStatus::Requested)
                        .collect()
                })
                .unwrap_or_default()
        });
        Ok(members
            .into_iter()
            .filter_map(|m| Ts::from_rust(&Member::from(m)).ok())
            .collect())
    }

    /// Approves `account`'s request: adds it with `role` (default: the role it asked for).
    #[wasm_bindgen(js_name = approveJoin, unchecked_return_type = "Promise<IntentResult>")]
    pub fn approve_join(&self, conv: String, account: String, role: Option<Ts<Role>>) -> Promise {
        let rt = self.rt.clone();
        let role = role.map(|r| r.to_rust());
        promise(async move {
            let conv = conv_id(&conv)?;
            let account = account_id(&account)?;
            let asked = rt.read(None, |e| {
                e.conversation(&conv)
                    .and_then(|c| c.members.get(&account).map(|m| m.role))
            });
            let role = match role.transpose()? {
                Some(r) => r.into(),
                None => asked.unwrap_or(confab_core::model::conversation::Role::Member),
            };
            let intent = Intent::AddMember {
                conv,
                account,
                role,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }

    /// Declines `account`'s request (its entry becomes `removed`; it cannot ask again by
    /// itself).
    #[wasm_bindgen(js_name = declineJoin, unchecked_return_type = "Promise<IntentResult>")]
    pub fn decline_join(&self, conv: String, account: String) -> Promise {
        let rt = self.rt.clone();
        promise(async move {
            let intent = Intent::RemoveMember {
                conv: conv_id(&conv)?,
                account: account_id(&account)?,
                ban: false,
            };
            run(&rt, vec![intent], IntentResult::default()).await
        })
    }
}
