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

/// One registered device of this account (`client.devices()`), as the server's directory
/// lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct AccountDevice {
    /// Its name (`deviceId` of the client that runs as it).
    pub device: String,
    /// When its first key package upload registered it (ms since the epoch, server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub registered_at: Option<i64>,
    /// When it last connected (ms since the epoch, server time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub last_seen_at: Option<i64>,
    /// Whether it is this client's device.
    pub this_device: bool,
    /// The key packages it holds: how many more devices can add it to encrypted
    /// conversations before its last-resort package is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub key_packages: Option<u64>,
    /// Its MLS signature key, lower-case hex: compare it with what the device shows to
    /// know it is the one you think.
    pub signature_key: String,
}

impl From<confab_core::client::DeviceInfo> for AccountDevice {
    fn from(d: confab_core::client::DeviceInfo) -> Self {
        AccountDevice {
            device: d.device,
            registered_at: d.registered_at,
            last_seen_at: d.last_seen_at,
            this_device: d.this_device,
            key_packages: d.key_packages,
            signature_key: hex::encode(d.signature_key),
        }
    }
}

/// A key-change notice of an encrypted conversation (`client.keyChanges(conv)`): what a
/// commit this device followed did to a device of an account that stays in the group, as
/// the device's own MLS state proves it (docs/E2EE.md, "Key changes in the timeline").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct KeyChangeNotice {
    pub kind: KeyChangeKind,
    pub account: String,
    pub device: String,
    /// The epoch the commit began: what is sealed from it on was sealed after the change.
    pub epoch: u64,
    /// The notice in words ("bob added a device (tablet)").
    pub words: String,
    /// The id of the timeline message it stands right before (the first sealed in `epoch`
    /// or later); absent: after every message.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[tsify(optional)]
    pub before: Option<String>,
}

/// What a key-change notice tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "snake_case")]
pub enum KeyChangeKind {
    /// A device of an account already in the group was added.
    DeviceAdded,
    /// A device was removed while its account keeps another in the group.
    DeviceRemoved,
    /// A device has another signature key than this device knew for it.
    KeyChanged,
}

impl From<cc::KeyNotice> for KeyChangeNotice {
    fn from(n: cc::KeyNotice) -> Self {
        let kind = match n.change {
            cc::KeyChange::DeviceAdded { .. } => KeyChangeKind::DeviceAdded,
            cc::KeyChange::DeviceRemoved { .. } => KeyChangeKind::DeviceRemoved,
            cc::KeyChange::KeyChanged { .. } => KeyChangeKind::KeyChanged,
        };
        KeyChangeNotice {
            kind,
            account: n.change.account().to_string(),
            device: n.change.device().to_string(),
            epoch: n.change.epoch(),
            words: n.change.words(),
            before: n.before.map(|m| m.to_string()),
        }
    }
}
