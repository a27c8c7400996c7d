//! End-to-end encryption as the client shows it (docs/E2EE.md): a conversation's `encryption`
//! block, the same facts REST answers.

use confab_core::ids::{DocId, TenantId};

use super::*;

/// Whether and how a conversation is end-to-end encrypted (`Conversation.encryption`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Encryption {
    /// Chosen at creation, never turned off.
    pub enabled: bool,
    /// `"mls"` where enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub protocol: Option<String>,
    /// The MLS group id: the conversation document's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub group_id: Option<String>,
    /// The group's epoch (one more per membership commit); absent until a member's device
    /// made the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub key_version: Option<u64>,
    /// When the group was made or last committed to (ms since the epoch, server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub last_key_rotation: Option<i64>,
}

impl Encryption {
    pub(crate) fn of(conv: &cv::Conversation, tenant: &TenantId) -> Self {
        let enabled = conv.encrypted();
        Encryption {
            enabled,
            protocol: enabled.then(|| "mls".to_owned()),
            group_id: enabled.then(|| DocId::conv(tenant, &conv.id).to_string()),
            key_version: conv.mls.map(|m| m.epoch),
            last_key_rotation: conv.mls.map(|m| m.at),
        }
    }
}
