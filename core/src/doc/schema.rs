//! Document layout, version 1. `docs/SCHEMA.md` describes the same for other languages.
//!
//! Only maps and scalars: every value has a path of map keys, which keeps the validation of a
//! change a walk over its ops. Bodies are scalar strings, never Automerge Text.

/// The `schema` value the genesis of every document writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Key names. One spelling for the writer, the reader and the validator.
pub mod keys {
    pub const SCHEMA: &str = "schema";
    /// At the root of a cut document: its generation (`doc::cut`), written by the cut actor
    /// only; absent in generation 0.
    pub const GENERATION: &str = "generation";

    // conv: top-level maps
    pub const META: &str = "meta";
    pub const INFO: &str = "info";
    pub const SETTINGS: &str = "settings";
    pub const MEMBERS: &str = "members";
    pub const PINS: &str = "pins";
    pub const READS: &str = "reads";
    pub const LIFECYCLE: &str = "lifecycle";

    // conv/meta (write once, in the creation change)
    pub const KIND: &str = "kind";
    pub const CREATED_BY: &str = "created_by";
    pub const CREATED_AT: &str = "created_at";
    pub const BUCKET_MS: &str = "bucket_ms";
    pub const PARENT: &str = "parent";
    pub const PARENT_MESSAGE: &str = "parent_message";
    pub const DEPTH: &str = "depth";
    pub const RESOURCE: &str = "resource";
    pub const CLIENT: &str = "client";
    pub const OWNER: &str = "owner";
    /// `true`: the conversation is end-to-end encrypted (MLS), chosen at creation for good.
    pub const ENCRYPTED: &str = "encrypted";

    // conv/mls: the conversation's MLS group, written by its members' devices
    // (docs/E2EE.md, "The group in the document")
    pub const MLS: &str = "mls";
    /// The creator's group at epoch 0 (an MLS GroupInfo) and its ratchet tree.
    pub const GROUP_INFO: &str = "group_info";
    pub const TREE: &str = "tree";
    /// `mls/commits/<epoch>`: the commit that moved the group from that epoch to the next.
    pub const COMMITS: &str = "commits";
    /// `mls/welcomes/<epoch>`: the Welcome of the devices that commit added.
    pub const WELCOMES: &str = "welcomes";
    /// The group's epoch now, and when it last moved (`mls/at`).
    pub const EPOCH: &str = "epoch";

    // conv/info
    pub const TITLE: &str = "title";
    pub const DESCRIPTION: &str = "description";
    pub const AVATAR: &str = "avatar";
    pub const THEME_COLOR: &str = "theme_color";
    pub const THEME_BACKGROUND: &str = "theme_background";
    /// Support threads: the names of the client and the owner.
    pub const CLIENT_NAME: &str = "client_name";
    pub const OWNER_NAME: &str = "owner_name";

    // conv/settings
    pub const SEND_POLICY: &str = "send_policy";
    pub const JOIN_POLICY: &str = "join_policy";
    pub const JOIN_APPROVAL_REQUIRED: &str = "join_approval_required";
    pub const INFO_EDIT_POLICY: &str = "info_edit_policy";
    pub const SUBROOM_POLICY: &str = "subroom_policy";
    pub const MAX_SUBROOM_DEPTH: &str = "max_subroom_depth";
    pub const SLOW_MODE_SECONDS: &str = "slow_mode_seconds";
    pub const RETENTION_DAYS: &str = "retention_days";
    pub const ALLOW_REACTIONS: &str = "allow_reactions";
    pub const ALLOW_STICKERS: &str = "allow_stickers";
    pub const ALLOW_ATTACHMENTS: &str = "allow_attachments";
    pub const LOCKED: &str = "locked";
    pub const ADD_MEMBERS_POLICY: &str = "add_members_policy";
    pub const SCOPE: &str = "scope";

    // conv/members/<account>
    pub const ROLE: &str = "role";
    pub const STATUS: &str = "status";
    pub const JOINED_AT: &str = "joined_at";
    pub const INVITED_BY: &str = "invited_by";
    pub const LEFT_AT: &str = "left_at";
    pub const REMOVED_AT: &str = "removed_at";
    pub const NICKNAME: &str = "nickname";
    pub const COLOR: &str = "color";
    pub const BLOCKED: &str = "blocked";
    /// A temporary role: `role` holds until this server time (ms), `role_after` from then.
    pub const ROLE_UNTIL: &str = "role_until";
    pub const ROLE_AFTER: &str = "role_after";
    /// A delivery marker: written by that member only, outside `MEMBER_FIELDS` (it is not
    /// part of what the member is allowed, so it never moves the policy version).
    pub const DELIVERED: &str = "delivered";

    // conv/pins/<message> and conv/lifecycle
    pub const BY: &str = "by";
    pub const AT: &str = "at";
    pub const STATE: &str = "state";
    /// Support threads: the lead's closure and the lead.
    pub const OUTCOME: &str = "outcome";
    pub const REASON: &str = "reason";
    pub const LEAD: &str = "lead";

    // msgs
    pub const MESSAGES: &str = "messages";
    pub const REACTIONS: &str = "reactions";
    pub const AUTHOR: &str = "author";
    pub const BODY: &str = "body";
    pub const PAYLOAD: &str = "payload";
    pub const CAPTION: &str = "caption";
    pub const ATTACHMENTS: &str = "attachments";
    pub const MENTIONS: &str = "mentions";
    pub const REPLY_TO: &str = "reply_to";
    pub const FORWARDED_FROM: &str = "forwarded_from";
    pub const SCHEDULED_AT: &str = "scheduled_at";
    pub const EDITED_AT: &str = "edited_at";
    pub const DELETED_AT: &str = "deleted_at";
    /// The account that deleted the message: the account of the deleting change.
    pub const DELETED_BY: &str = "deleted_by";
    /// Support threads: a message's sender stamps (role, name, lead).
    pub const SENDER_ROLE: &str = "sender_role";
    pub const SENDER_NAME: &str = "sender_name";
    pub const RELATED_LEAD: &str = "related_lead";
    /// An encrypted conversation's message content: one MLS application message whose
    /// plaintext is the content (`model::message::SealedContent`) and whose authenticated
    /// data is the message id (docs/E2EE.md, "Sealed messages").
    pub const SEALED: &str = "sealed";
    /// A sealed message's blob hashes in the clear (JSON array of 64-hex SHA-256): the blobs
    /// its sealed attachments name, so the server releases them with it (docs/E2EE.md,
    /// "Encrypted attachments").
    pub const BLOBS: &str = "blobs";

    // profile (root scalars)
    pub const DISPLAY_NAME: &str = "display_name";
    pub const BIO: &str = "bio";

    // private
    pub const CONTACTS: &str = "contacts";
    pub const CONVS: &str = "convs";
    pub const DRAFTS: &str = "drafts";
    pub const SCHEDULED: &str = "scheduled";
    /// `private/scheduled/<message>/refused`: why the server did not post it (a reject code).
    pub const REFUSED: &str = "refused";
    pub const PHONE: &str = "phone";
    pub const EMAIL: &str = "email";
    pub const ACCOUNT: &str = "account";
    pub const MUTED: &str = "muted";
    pub const MUTED_UNTIL: &str = "muted_until";
    pub const PINNED: &str = "pinned";
    pub const PINNED_AT: &str = "pinned_at";
    pub const ARCHIVED: &str = "archived";
    pub const ARCHIVED_AT: &str = "archived_at";
    /// Private: when the account hid a direct conversation from its list (ms, server time).
    pub const HIDDEN_AT: &str = "hidden_at";
    pub const NOTIFICATIONS: &str = "notifications";
    pub const CONV: &str = "conv";
}

/// Message maps are spread over this many shard maps (made by the genesis), so applying a
/// change walks one small map instead of the whole bucket (Automerge's cost per write grows
/// with the size of the map written into).
pub const MESSAGE_SHARDS: u8 = 64;

/// The shard key of a message id: two decimal digits, `00`..`63`, from SHA-256 of the id.
pub fn message_shard(message: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(message.as_bytes());
    format!("{:02}", digest[0] % MESSAGE_SHARDS)
}

/// Separator inside a reaction key `<message>|<account>|<emoji>`; ids and emoji never hold it.
pub const REACTION_SEP: char = '|';

/// The key of one account's reaction on one message.
pub fn reaction_key(message: &str, account: &str, emoji: &str) -> String {
    format!("{message}{REACTION_SEP}{account}{REACTION_SEP}{emoji}")
}

/// Splits a reaction key into (message, account, emoji).
pub fn split_reaction_key(key: &str) -> Option<(&str, &str, &str)> {
    let (message, rest) = key.split_once(REACTION_SEP)?;
    let (account, emoji) = rest.split_once(REACTION_SEP)?;
    Some((message, account, emoji))
}

/// The scalar type a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Str,
    Int,
    Bool,
    Bytes,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "integer",
            FieldType::Bool => "boolean",
            FieldType::Bytes => "bytes",
        }
    }
}

use keys::*;
use FieldType::{Bool, Bytes, Int, Str};

/// Fields of `conv/meta`.
pub const META_FIELDS: &[(&str, FieldType)] = &[
    (KIND, Str),
    (CREATED_BY, Str),
    (CREATED_AT, Int),
    (BUCKET_MS, Int),
    (PARENT, Str),
    (PARENT_MESSAGE, Str),
    (DEPTH, Int),
    (RESOURCE, Str),
    (CLIENT, Str),
    (OWNER, Str),
    (ENCRYPTED, Bool),
];

/// Fields of `conv/info`.
pub const INFO_FIELDS: &[(&str, FieldType)] = &[
    (TITLE, Str),
    (DESCRIPTION, Str),
    (AVATAR, Str),
    (THEME_COLOR, Str),
    (THEME_BACKGROUND, Str),
    (CLIENT_NAME, Str),
    (OWNER_NAME, Str),
];

/// Fields of `conv/settings`.
pub const SETTINGS_FIELDS: &[(&str, FieldType)] = &[
    (SEND_POLICY, Str),
    (JOIN_POLICY, Str),
    (JOIN_APPROVAL_REQUIRED, Bool),
    (INFO_EDIT_POLICY, Str),
    (SUBROOM_POLICY, Str),
    (MAX_SUBROOM_DEPTH, Int),
    (SLOW_MODE_SECONDS, Int),
    (RETENTION_DAYS, Int),
    (ALLOW_REACTIONS, Bool),
    (ALLOW_STICKERS, Bool),
    (ALLOW_ATTACHMENTS, Bool),
    (LOCKED, Bool),
    (ADD_MEMBERS_POLICY, Str),
    (SCOPE, Str),
];

/// Fields of `conv/members/<account>`, permission overrides (`can_*`, booleans) aside.
pub const MEMBER_FIELDS: &[(&str, FieldType)] = &[
    (ROLE, Str),
    (STATUS, Str),
    (JOINED_AT, Int),
    (INVITED_BY, Str),
    (LEFT_AT, Int),
    (REMOVED_AT, Int),
    (NICKNAME, Str),
    (COLOR, Str),
    (BLOCKED, Bool),
    (ROLE_UNTIL, Int),
    (ROLE_AFTER, Str),
];

/// The suffix of a temporary override's expiry: `can_pin_messages_until` (int, ms) ends
/// the `can_pin_messages` override at that server time.
pub const UNTIL_SUFFIX: &str = "_until";

/// The key of `permission`'s override expiry in a member entry.
pub fn override_until_key(permission: crate::model::conversation::Permission) -> String {
    format!("{}{UNTIL_SUFFIX}", permission.as_str())
}

/// The permission whose override expiry `key` is, if it is one.
pub fn override_until_of(key: &str) -> Option<crate::model::conversation::Permission> {
    let name = key.strip_suffix(UNTIL_SUFFIX)?;
    crate::model::conversation::Permission::parse(name).ok()
}

/// Fields of `conv/pins/<message>`.
pub const PIN_FIELDS: &[(&str, FieldType)] = &[(BY, Str), (AT, Int)];

/// Fields of `conv/lifecycle`.
pub const LIFECYCLE_FIELDS: &[(&str, FieldType)] = &[(STATE, Str), (BY, Str), (AT, Int)];

/// The lead fields of `conv/lifecycle` (support threads).
pub const LEAD_FIELDS: &[(&str, FieldType)] = &[(OUTCOME, Str), (REASON, Str), (LEAD, Str)];

/// Fields of `msgs/messages/<message>`.
pub const MESSAGE_FIELDS: &[(&str, FieldType)] = &[
    (AUTHOR, Str),
    (KIND, Str),
    (BODY, Str),
    (PAYLOAD, Str),
    (CAPTION, Str),
    (ATTACHMENTS, Str),
    (MENTIONS, Str),
    (REPLY_TO, Str),
    (FORWARDED_FROM, Str),
    (CREATED_AT, Int),
    (SCHEDULED_AT, Int),
    (SENDER_ROLE, Str),
    (SENDER_NAME, Str),
    (RELATED_LEAD, Str),
    (EDITED_AT, Int),
    (DELETED_AT, Int),
    (DELETED_BY, Str),
    (STATUS, Str),
    (SEALED, Bytes),
    (BLOBS, Str),
];

/// What a deleted message keeps (docs/SCHEMA.md, "Tombstones"): every other field of it is
/// removed by the deleting change itself.
pub const TOMBSTONE_FIELDS: &[&str] = &[AUTHOR, KIND, CREATED_AT, DELETED_AT, DELETED_BY];

/// Root fields of a profile.
pub const PROFILE_FIELDS: &[(&str, FieldType)] = &[
    (KIND, Str),
    (DISPLAY_NAME, Str),
    (AVATAR, Str),
    (BIO, Str),
    (STATUS, Str),
];

/// Fields of `private/contacts/<contact>`.
pub const CONTACT_FIELDS: &[(&str, FieldType)] = &[
    (KIND, Str),
    (PHONE, Str),
    (EMAIL, Str),
    (ACCOUNT, Str),
    (NICKNAME, Str),
];

/// Fields of `private/convs/<conversation>`.
pub const CONV_PREF_FIELDS: &[(&str, FieldType)] = &[
    (MUTED, Bool),
    (MUTED_UNTIL, Int),
    (PINNED, Bool),
    (PINNED_AT, Int),
    (ARCHIVED, Bool),
    (ARCHIVED_AT, Int),
    (HIDDEN_AT, Int),
    (NOTIFICATIONS, Str),
];

/// Fields of `private/scheduled/<message>`.
pub const SCHEDULED_FIELDS: &[(&str, FieldType)] =
    &[(CONV, Str), (BODY, Str), (AT, Int), (REFUSED, Str)];

/// The type of `field` in a field table, or `None` for a key the schema does not name.
pub fn field_type(table: &[(&str, FieldType)], field: &str) -> Option<FieldType> {
    table.iter().find(|(k, _)| *k == field).map(|(_, t)| *t)
}
