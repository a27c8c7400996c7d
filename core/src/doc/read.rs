//! Typed views read out of documents. Values of the wrong type read as absent: only the
//! server's validation decides what a document may hold, reading never fails on content.

use std::collections::BTreeMap;

use automerge::{Automerge, ObjId, ObjType, ReadDoc, ScalarValue, Value, ROOT};

use super::schema::{keys::*, message_shard, split_reaction_key};
use crate::ids::{AccountId, ContactId, ConvId, LeadId, MessageId, ResourceId};
use crate::model::account::{AccountKind, Profile};
use crate::model::contact::{Contact, ContactKind};
use crate::model::conversation::*;
use crate::model::message::{ForwardedFrom, Message, MessageKind};
use crate::model::proposal::ProposalStatus;
use crate::model::support::{LeadOutcome, SenderRole};

/// A scalar at `obj[key]` (the winning value where there is a conflict).
pub fn scalar<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Scalar(s), _) => Some(s.into_owned()),
        _ => None,
    }
}

pub fn get_str<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<String> {
    match scalar(doc, obj, key)? {
        ScalarValue::Str(s) => Some(s.to_string()),
        _ => None,
    }
}

pub fn get_int<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<i64> {
    match scalar(doc, obj, key)? {
        ScalarValue::Int(i) => Some(i),
        _ => None,
    }
}

pub fn get_bool<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<bool> {
    match scalar(doc, obj, key)? {
        ScalarValue::Boolean(b) => Some(b),
        _ => None,
    }
}

/// The map at `obj[key]`, if there is one.
pub fn get_bytes<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<Vec<u8>> {
    match scalar(doc, obj, key)? {
        ScalarValue::Bytes(b) => Some(b),
        _ => None,
    }
}

pub fn get_map<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<ObjId> {
    match doc.get(obj, key).ok().flatten()? {
        (Value::Object(ObjType::Map), id) => Some(id),
        _ => None,
    }
}

fn parsed<T>(
    value: Option<String>,
    parse: impl Fn(&str) -> Result<T, crate::ModelError>,
) -> Option<T> {
    value.and_then(|v| parse(&v).ok())
}

/// A stored id, if it is a valid one.
fn id_of<T: TryFrom<String>>(value: Option<String>) -> Option<T> {
    value.and_then(|v| T::try_from(v).ok())
}

fn account<R: ReadDoc>(doc: &R, obj: &ObjId, key: &str) -> Option<AccountId> {
    id_of::<AccountId>(get_str(doc, obj, key))
}

/// Reads one member entry.
pub fn read_member<R: ReadDoc>(doc: &R, members: &ObjId, account_id: &AccountId) -> Option<Member> {
    let obj = get_map(doc, members, account_id.as_str())?;
    let mut member = Member::new(
        account_id.clone(),
        parsed(get_str(doc, &obj, ROLE), Role::parse)?,
    );
    member.status = parsed(get_str(doc, &obj, STATUS), MemberStatus::parse)?;
    member.joined_at = get_int(doc, &obj, JOINED_AT);
    member.invited_by = account(doc, &obj, INVITED_BY);
    member.left_at = get_int(doc, &obj, LEFT_AT);
    member.removed_at = get_int(doc, &obj, REMOVED_AT);
    member.nickname = get_str(doc, &obj, NICKNAME);
    member.color = get_str(doc, &obj, COLOR);
    member.blocked = get_bool(doc, &obj, BLOCKED).unwrap_or(false);
    member.role_until = get_int(doc, &obj, ROLE_UNTIL);
    member.role_after = get_str(doc, &obj, ROLE_AFTER).and_then(|r| Role::parse(&r).ok());
    // Overrides and their expiries are the `can_*` keys: one range walk, whatever is set.
    // (`` ` `` sorts right after `_`.)
    for item in doc.map_range(&obj, "can_".to_owned().."can`".to_owned()) {
        match &item.value {
            automerge::ValueRef::Scalar(automerge::ScalarValueRef::Boolean(b)) => {
                if let Ok(permission) = Permission::parse(&item.key) {
                    member.overrides.insert(permission, *b);
                }
            }
            automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(at)) => {
                if let Some(permission) = super::schema::override_until_of(&item.key) {
                    member.overrides_until.insert(permission, *at);
                }
            }
            _ => {}
        }
    }
    Some(member)
}

/// Reads `meta`; `None` until the creation change is in.
pub fn read_meta(doc: &Automerge) -> Option<Meta> {
    let meta = get_map(doc, &ROOT, META)?;
    let kind = parsed(get_str(doc, &meta, KIND), ConvKind::parse)?;
    let thread = match (
        id_of::<ConvId>(get_str(doc, &meta, PARENT)),
        id_of::<MessageId>(get_str(doc, &meta, PARENT_MESSAGE)),
        get_int(doc, &meta, DEPTH),
    ) {
        (Some(parent), Some(message), Some(depth)) => Some(ThreadLink {
            parent,
            message,
            depth: u32::try_from(depth).unwrap_or(u32::MAX),
        }),
        _ => None,
    };
    let resource = match (
        id_of::<ResourceId>(get_str(doc, &meta, RESOURCE)),
        account(doc, &meta, CLIENT),
        account(doc, &meta, OWNER),
    ) {
        (Some(resource), Some(client), Some(owner)) => Some(ResourceLink {
            resource,
            client,
            owner,
        }),
        _ => None,
    };
    Some(Meta {
        kind,
        created_by: account(doc, &meta, CREATED_BY),
        created_at: get_int(doc, &meta, CREATED_AT).unwrap_or(0),
        bucket_ms: get_int(doc, &meta, BUCKET_MS).unwrap_or(DEFAULT_BUCKET_MS),
        thread,
        resource,
        encrypted: get_bool(doc, &meta, ENCRYPTED).unwrap_or(false),
    })
}

/// Where the MLS group of an encrypted conversation stands; `None` before it is made.
pub fn read_mls(doc: &Automerge) -> Option<MlsState> {
    let mls = get_map(doc, &ROOT, MLS)?;
    Some(MlsState {
        epoch: get_int(doc, &mls, EPOCH).and_then(|e| u64::try_from(e).ok())?,
        at: get_int(doc, &mls, AT).unwrap_or(0),
    })
}

/// The MLS messages an encrypted conversation's document holds: the creator's group info and
/// tree, and the commit (with its Welcome, if it added devices) of each epoch, by epoch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MlsLog {
    pub group_info: Vec<u8>,
    pub tree: Vec<u8>,
    pub commits: BTreeMap<u64, Vec<u8>>,
}

/// The group's messages from `from_epoch` on (a device catching up reads only those).
pub fn read_mls_log(doc: &Automerge, from_epoch: u64) -> Option<MlsLog> {
    let mls = get_map(doc, &ROOT, MLS)?;
    let mut log = MlsLog {
        group_info: get_bytes(doc, &mls, GROUP_INFO)?,
        tree: get_bytes(doc, &mls, TREE)?,
        commits: BTreeMap::new(),
    };
    if let Some(commits) = get_map(doc, &mls, COMMITS) {
        for key in doc.keys(&commits) {
            let Some(epoch) = key.parse::<u64>().ok().filter(|e| *e >= from_epoch) else {
                continue;
            };
            if let Some(bytes) = get_bytes(doc, &commits, &key) {
                log.commits.insert(epoch, bytes);
            }
        }
    }
    Some(log)
}

/// The Welcome that the commit of `epoch` carried, if it added devices.
pub fn read_mls_welcome(doc: &Automerge, epoch: u64) -> Option<Vec<u8>> {
    let mls = get_map(doc, &ROOT, MLS)?;
    let welcomes = get_map(doc, &mls, WELCOMES)?;
    get_bytes(doc, &welcomes, &epoch.to_string())
}

pub fn read_info(doc: &Automerge) -> Info {
    let Some(info) = get_map(doc, &ROOT, INFO) else {
        return Info::default();
    };
    Info {
        title: get_str(doc, &info, TITLE),
        description: get_str(doc, &info, DESCRIPTION),
        avatar: get_str(doc, &info, AVATAR),
        theme_color: get_str(doc, &info, THEME_COLOR),
        theme_background: get_str(doc, &info, THEME_BACKGROUND),
        client_name: get_str(doc, &info, CLIENT_NAME),
        owner_name: get_str(doc, &info, OWNER_NAME),
    }
}

pub fn read_settings(doc: &Automerge, kind: ConvKind) -> Settings {
    let mut s = Settings::defaults_for(kind);
    let Some(obj) = get_map(doc, &ROOT, SETTINGS) else {
        return s;
    };
    let uint = |key| get_int(doc, &obj, key).and_then(|v| u32::try_from(v).ok());
    if let Some(v) = parsed(get_str(doc, &obj, SEND_POLICY), SendPolicy::parse) {
        s.send_policy = v;
    }
    if let Some(v) = parsed(get_str(doc, &obj, JOIN_POLICY), JoinPolicy::parse) {
        s.join_policy = v;
    }
    if let Some(v) = parsed(get_str(doc, &obj, INFO_EDIT_POLICY), EditPolicy::parse) {
        s.info_edit_policy = v;
    }
    if let Some(v) = parsed(get_str(doc, &obj, SUBROOM_POLICY), EditPolicy::parse) {
        s.subroom_policy = v;
    }
    s.join_approval_required =
        get_bool(doc, &obj, JOIN_APPROVAL_REQUIRED).unwrap_or(s.join_approval_required);
    s.max_subroom_depth = uint(MAX_SUBROOM_DEPTH).unwrap_or(s.max_subroom_depth);
    s.slow_mode_seconds = uint(SLOW_MODE_SECONDS).unwrap_or(s.slow_mode_seconds);
    s.retention_days = uint(RETENTION_DAYS).or(s.retention_days);
    s.allow_reactions = get_bool(doc, &obj, ALLOW_REACTIONS).unwrap_or(s.allow_reactions);
    s.allow_stickers = get_bool(doc, &obj, ALLOW_STICKERS).unwrap_or(s.allow_stickers);
    s.allow_attachments = get_bool(doc, &obj, ALLOW_ATTACHMENTS).unwrap_or(s.allow_attachments);
    s.locked = get_bool(doc, &obj, LOCKED).unwrap_or(s.locked);
    if let Some(v) = parsed(get_str(doc, &obj, ADD_MEMBERS_POLICY), EditPolicy::parse) {
        s.add_members_policy = v;
    }
    if let Some(v) = parsed(
        get_str(doc, &obj, SCOPE),
        crate::model::joining::Scope::parse,
    ) {
        s.scope = v;
    }
    s
}

pub fn read_lifecycle(doc: &Automerge) -> LifecycleState {
    let obj = get_map(doc, &ROOT, LIFECYCLE);
    let state = obj
        .as_ref()
        .and_then(|o| parsed(get_str(doc, o, STATE), Lifecycle::parse))
        .unwrap_or(Lifecycle::Active);
    LifecycleState {
        state,
        by: obj.as_ref().and_then(|o| account(doc, o, BY)),
        at: obj.as_ref().and_then(|o| get_int(doc, o, AT)),
        outcome: obj
            .as_ref()
            .and_then(|o| parsed(get_str(doc, o, OUTCOME), LeadOutcome::parse)),
        // An empty reason is none (the closure writes one every time).
        reason: obj
            .as_ref()
            .and_then(|o| get_str(doc, o, REASON))
            .filter(|r| !r.is_empty()),
        lead: obj
            .as_ref()
            .and_then(|o| id_of::<LeadId>(get_str(doc, o, LEAD))),
    }
}

fn map_keys(doc: &Automerge, obj: &ObjId) -> Vec<String> {
    doc.keys(obj).collect()
}

pub fn read_members(doc: &Automerge) -> BTreeMap<AccountId, Member> {
    let Some(members) = get_map(doc, &ROOT, MEMBERS) else {
        return BTreeMap::new();
    };
    map_keys(doc, &members)
        .into_iter()
        .filter_map(|key| AccountId::new(key).ok())
        .filter_map(|id| read_member(doc, &members, &id).map(|m| (id, m)))
        .collect()
}

pub fn read_pins(doc: &Automerge) -> BTreeMap<MessageId, Pin> {
    let Some(pins) = get_map(doc, &ROOT, PINS) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for key in map_keys(doc, &pins) {
        let (Ok(message), Some(obj)) = (MessageId::new(key.clone()), get_map(doc, &pins, &key))
        else {
            continue;
        };
        if let (Some(by), Some(at)) = (account(doc, &obj, BY), get_int(doc, &obj, AT)) {
            out.insert(message.clone(), Pin { message, by, at });
        }
    }
    out
}

pub fn read_reads(doc: &Automerge) -> BTreeMap<AccountId, MessageId> {
    let Some(reads) = get_map(doc, &ROOT, READS) else {
        return BTreeMap::new();
    };
    map_keys(doc, &reads)
        .into_iter()
        .filter_map(|key| {
            let message = id_of::<MessageId>(get_str(doc, &reads, &key))?;
            Some((AccountId::new(key).ok()?, message))
        })
        .collect()
}

/// One account's delivery marker, `members/<account>/delivered`.
pub fn read_delivered_of(
    doc: &Automerge,
    members: &ObjId,
    account: &AccountId,
) -> Option<MessageId> {
    let obj = get_map(doc, members, account.as_str())?;
    id_of::<MessageId>(get_str(doc, &obj, DELIVERED))
}

/// Every member's delivery marker. O(members), like `read_members`.
pub fn read_delivered(doc: &Automerge) -> BTreeMap<AccountId, MessageId> {
    let Some(members) = get_map(doc, &ROOT, MEMBERS) else {
        return BTreeMap::new();
    };
    map_keys(doc, &members)
        .into_iter()
        .filter_map(|key| {
            let account = AccountId::new(key).ok()?;
            let message = read_delivered_of(doc, &members, &account)?;
            Some((account, message))
        })
        .collect()
}

/// The whole conversation. O(members): the server keeps it cached and refreshes parts.
pub fn read_conversation(doc: &Automerge, id: ConvId) -> Conversation {
    let meta = read_meta(doc);
    let kind = meta.as_ref().map_or(ConvKind::Group, |m| m.kind);
    Conversation {
        id,
        settings: read_settings(doc, kind),
        meta,
        info: read_info(doc),
        members: read_members(doc),
        pins: read_pins(doc),
        reads: read_reads(doc),
        delivered: read_delivered(doc),
        lifecycle: read_lifecycle(doc),
        mls: read_mls(doc),
    }
}

/// How many messages a bucket holds (deleted ones too: a tombstone keeps its place). Reads
/// the shard maps' lengths only, not the messages.
pub fn message_count(doc: &Automerge) -> usize {
    let Some(messages) = get_map(doc, &ROOT, MESSAGES) else {
        return 0;
    };
    doc.map_range(&messages, ..)
        .filter_map(|item| match item.value {
            automerge::ValueRef::Object(ObjType::Map) => Some(doc.length(item.id())),
            _ => None,
        })
        .sum()
}

/// One message of a bucket, without its reactions. One pass over the message's map: most
/// fields are absent, and a lookup per field costs more than the scan.
pub fn read_message_fields(doc: &Automerge, id: &MessageId) -> Option<Message> {
    let messages = get_map(doc, &ROOT, MESSAGES)?;
    let shard = get_map(doc, &messages, &message_shard(id.as_str()))?;
    let obj = get_map(doc, &shard, id.as_str())?;
    message_from_map(doc, &obj, id.clone())
}

/// A message with no field set but its id: what a read starts from.
fn empty_message(id: MessageId) -> Option<Message> {
    Some(Message {
        id,
        author: AccountId::new("x").ok()?,
        kind: MessageKind::Text,
        body: String::new(),
        payload: None,
        caption: None,
        attachments: None,
        mentions: None,
        reply_to: None,
        forwarded_from: None,
        created_at: 0,
        edited_at: None,
        deleted_at: None,
        deleted_by: None,
        scheduled_at: None,
        status: None,
        reactions: BTreeMap::new(),
        stamp: Default::default(),
        sealed: None,
        blobs: None,
    })
}

fn message_from_map(doc: &Automerge, obj: &ObjId, id: MessageId) -> Option<Message> {
    let fields = doc.map_range(obj, ..).filter_map(|item| match item.value {
        automerge::ValueRef::Scalar(value) => Some((item.key, value)),
        _ => None,
    });
    message_from_fields(fields, id)
}

/// A scalar as a map read gives it (`message_from_fields` takes both).
pub fn scalar_ref(value: &automerge::ScalarValue) -> automerge::ScalarValueRef<'_> {
    use automerge::{ScalarValue as V, ScalarValueRef as R};
    use std::borrow::Cow;
    match value {
        V::Str(s) => R::Str(Cow::Borrowed(s.as_str())),
        V::Bytes(b) => R::Bytes(Cow::Borrowed(b.as_slice())),
        V::Int(i) => R::Int(*i),
        V::Uint(u) => R::Uint(*u),
        V::F64(f) => R::F64(*f),
        V::Timestamp(t) => R::Timestamp(*t),
        V::Boolean(b) => R::Boolean(*b),
        // No message field holds these.
        V::Counter(_) | V::Unknown { .. } | V::Null => R::Null,
    }
}

/// A message from its map's scalar fields (key and value, in any order; a key at most
/// once): what a read of its map in the document gives, or the fields the change that made
/// it wrote (`client::timeline::touched_and_made`).
pub fn message_from_fields<'v, K: AsRef<str>>(
    fields: impl IntoIterator<Item = (K, automerge::ScalarValueRef<'v>)>,
    id: MessageId,
) -> Option<Message> {
    use automerge::ScalarValueRef as S;
    let mut author = None;
    let mut kind = None;
    let mut created_at = None;
    let mut m = empty_message(id)?;
    for (key, value) in fields {
        match (key.as_ref(), &value) {
            (AUTHOR, S::Str(s)) => author = AccountId::new(s.as_ref()).ok(),
            (KIND, S::Str(s)) => kind = MessageKind::parse(s).ok(),
            (BODY, S::Str(s)) => m.body = s.to_string(),
            (SEALED, S::Bytes(b)) => m.sealed = Some(b.to_vec()),
            (BLOBS, S::Str(s)) => m.blobs = Some(s.to_string()),
            (PAYLOAD, S::Str(s)) => m.payload = Some(s.to_string()),
            (CAPTION, S::Str(s)) => m.caption = Some(s.to_string()),
            (ATTACHMENTS, S::Str(s)) => m.attachments = Some(s.to_string()),
            (MENTIONS, S::Str(s)) => m.mentions = Some(s.to_string()),
            (REPLY_TO, S::Str(s)) => m.reply_to = MessageId::new(s.as_ref()).ok(),
            (FORWARDED_FROM, S::Str(s)) => m.forwarded_from = ForwardedFrom::decode(s).ok(),
            (STATUS, S::Str(s)) => m.status = ProposalStatus::parse(s).ok(),
            (CREATED_AT, S::Int(i)) => created_at = Some(*i),
            (EDITED_AT, S::Int(i)) => m.edited_at = Some(*i),
            (DELETED_AT, S::Int(i)) => m.deleted_at = Some(*i),
            (DELETED_BY, S::Str(s)) => m.deleted_by = AccountId::new(s.as_ref()).ok(),
            (SCHEDULED_AT, S::Int(i)) => m.scheduled_at = Some(*i),
            (SENDER_ROLE, S::Str(s)) => m.stamp.sender_role = SenderRole::parse(s).ok(),
            (SENDER_NAME, S::Str(s)) => m.stamp.sender_name = Some(s.to_string()),
            (RELATED_LEAD, S::Str(s)) => m.stamp.related_lead = LeadId::new(s.as_ref()).ok(),
            _ => {}
        }
    }
    m.author = author?;
    m.kind = kind?;
    m.created_at = created_at?;
    if m.deleted_at.is_some() {
        // A tombstone reads as one even where an older delete (before tombstones were
        // checked whole) left content in the document: only its own fields are kept.
        let Message {
            id,
            author,
            kind,
            created_at,
            deleted_at,
            deleted_by,
            ..
        } = m;
        return Some(Message {
            author,
            kind,
            created_at,
            deleted_at,
            deleted_by,
            ..empty_message(id)?
        });
    }
    if let (MessageKind::Proposal, Some(status)) = (m.kind, m.status) {
        let shown = m
            .payload
            .as_deref()
            .and_then(|p| crate::model::proposal::payload_with_status(p, status));
        if shown.is_some() {
            m.payload = shown;
        }
    }
    Some(m)
}

/// The keys a message's map holds now: what a deleting change must remove
/// (`validate`, "Tombstones"). `None`: no such message.
pub fn message_keys(doc: &Automerge, id: &MessageId) -> Option<Vec<String>> {
    let messages = get_map(doc, &ROOT, MESSAGES)?;
    let shard = get_map(doc, &messages, &message_shard(id.as_str()))?;
    let obj = get_map(doc, &shard, id.as_str())?;
    Some(doc.keys(&obj).collect())
}

/// One message with its reactions (none on a tombstone: docs/SCHEMA.md, "Tombstones").
pub fn read_message(doc: &Automerge, id: &MessageId) -> Option<Message> {
    let mut message = read_message_fields(doc, id)?;
    if message.deleted_at.is_some() {
        return Some(message);
    }
    if let Some(reactions) = get_map(doc, &ROOT, REACTIONS) {
        let prefix = format!("{}|", id);
        let end = format!("{}}}", id); // '}' sorts right after '|'
        for item in doc.map_range(&reactions, prefix..end) {
            add_reaction(&mut message.reactions, &item.key, &item.value);
        }
    }
    Some(message)
}

/// The reactions (emoji) `account` keeps on message `message` of a bucket.
pub fn reactions_of(
    doc: &Automerge,
    message: &str,
    account: &str,
) -> std::collections::BTreeSet<String> {
    let Some(reactions) = get_map(doc, &ROOT, REACTIONS) else {
        return Default::default();
    };
    let prefix = format!("{message}|{account}|");
    let end = format!("{message}|{account}}}"); // '}' sorts right after '|'
    doc.map_range(&reactions, prefix..end)
        .filter_map(|item| split_reaction_key(&item.key).map(|(_, _, emoji)| emoji.to_owned()))
        .collect()
}

fn add_reaction(
    into: &mut BTreeMap<String, BTreeMap<AccountId, i64>>,
    key: &str,
    value: &automerge::ValueRef<'_>,
) {
    let Some((_, account, emoji)) = split_reaction_key(key) else {
        return;
    };
    let (Ok(account), automerge::ValueRef::Scalar(automerge::ScalarValueRef::Int(at))) =
        (AccountId::new(account), value)
    else {
        return;
    };
    into.entry(emoji.to_owned())
        .or_default()
        .insert(account, *at);
}

/// Whether the bucket holds message `id` (as `read_messages` would list it or not).
pub fn has_message(doc: &Automerge, id: &MessageId) -> bool {
    get_map(doc, &ROOT, MESSAGES)
        .and_then(|messages| get_map(doc, &messages, &message_shard(id.as_str())))
        .is_some_and(|shard| doc.get(&shard, id.as_str()).ok().flatten().is_some())
}

/// Every message of a bucket with reactions (none on a tombstone), in (created_at, id) order. The engine reorders
/// by server sequence: the timeline is in the server's acceptance order on every device.
pub fn read_messages(doc: &Automerge) -> Vec<Message> {
    let Some(messages) = get_map(doc, &ROOT, MESSAGES) else {
        return Vec::new();
    };
    let mut by_id: BTreeMap<MessageId, Message> = BTreeMap::new();
    for shard in doc.map_range(&messages, ..) {
        if !matches!(shard.value, automerge::ValueRef::Object(ObjType::Map)) {
            continue;
        }
        for item in doc.map_range(shard.id(), ..) {
            if !matches!(item.value, automerge::ValueRef::Object(ObjType::Map)) {
                continue;
            }
            let Ok(id) = MessageId::new(item.key.as_ref()) else {
                continue;
            };
            if let Some(m) = message_from_map(doc, &item.id(), id.clone()) {
                by_id.insert(id, m);
            }
        }
    }
    if let Some(reactions) = get_map(doc, &ROOT, REACTIONS) {
        for item in doc.map_range(&reactions, ..) {
            let Some((message, _, _)) = split_reaction_key(&item.key) else {
                continue;
            };
            let Ok(message) = MessageId::new(message) else {
                continue;
            };
            if let Some(m) = by_id.get_mut(&message).filter(|m| m.deleted_at.is_none()) {
                add_reaction(&mut m.reactions, &item.key, &item.value);
            }
        }
    }
    let mut out: Vec<Message> = by_id.into_values().collect();
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    out
}

/// An account's profile; `None` before it wrote one.
pub fn read_profile(doc: &Automerge) -> Option<Profile> {
    Some(Profile {
        kind: parsed(get_str(doc, &ROOT, KIND), AccountKind::parse)?,
        display_name: get_str(doc, &ROOT, DISPLAY_NAME).unwrap_or_default(),
        avatar: get_str(doc, &ROOT, AVATAR),
        bio: get_str(doc, &ROOT, BIO),
        status: get_str(doc, &ROOT, STATUS),
    })
}

/// An account's settings for one conversation (private document).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvPrefs {
    pub muted: bool,
    pub muted_until: Option<i64>,
    pub pinned: bool,
    pub pinned_at: Option<i64>,
    pub archived: bool,
    pub archived_at: Option<i64>,
    /// Direct conversations: when the account hid it from its list (server time, ms). It
    /// stays off the list until a message created after that time arrives.
    #[serde(default)]
    pub hidden_at: Option<i64>,
    pub notifications: Option<NotificationLevel>,
}

impl ConvPrefs {
    /// Whether the conversation is muted at `now` (server time, ms): while `muted_until` is
    /// in the future, or, without a `muted_until`, while `muted` is set. The one rule the
    /// server's notifier and the client's conversation list both follow.
    pub fn is_muted(&self, now: i64) -> bool {
        match self.muted_until {
            Some(until) => until > now,
            None => self.muted,
        }
    }

    /// Whether the conversation is off the account's list, given when its newest message
    /// was created (`None`: it has none): hidden, and nothing came after the hide. Both
    /// times are server time (the engine writes both with its server clock estimate).
    pub fn hides(&self, newest_message_at: Option<i64>) -> bool {
        self.hidden_at
            .is_some_and(|hidden| newest_message_at.is_none_or(|at| at <= hidden))
    }
}

/// A message the account scheduled and the client will post at `at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scheduled {
    pub id: MessageId,
    pub conv: ConvId,
    pub body: String,
    pub at: i64,
    /// Set by the server when it could not post it at its time: the reject code (e.g.
    /// `member_inactive`). A pending one has none.
    pub refused: Option<String>,
}

/// The private document, typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrivateData {
    pub contacts: BTreeMap<ContactId, Contact>,
    pub convs: BTreeMap<ConvId, ConvPrefs>,
    pub drafts: BTreeMap<ConvId, String>,
    pub scheduled: BTreeMap<MessageId, Scheduled>,
}

pub fn read_private(doc: &Automerge) -> PrivateData {
    let mut out = PrivateData::default();
    if let Some(contacts) = get_map(doc, &ROOT, CONTACTS) {
        for key in map_keys(doc, &contacts) {
            let (Ok(id), Some(obj)) = (ContactId::new(key.clone()), get_map(doc, &contacts, &key))
            else {
                continue;
            };
            let Some(kind) = parsed(get_str(doc, &obj, KIND), ContactKind::parse) else {
                continue;
            };
            out.contacts.insert(
                id,
                Contact {
                    kind,
                    phone: get_str(doc, &obj, PHONE),
                    email: get_str(doc, &obj, EMAIL),
                    account: account(doc, &obj, ACCOUNT),
                    nickname: get_str(doc, &obj, NICKNAME),
                },
            );
        }
    }
    if let Some(convs) = get_map(doc, &ROOT, CONVS) {
        for key in map_keys(doc, &convs) {
            let (Ok(id), Some(obj)) = (ConvId::new(key.clone()), get_map(doc, &convs, &key)) else {
                continue;
            };
            out.convs.insert(
                id,
                ConvPrefs {
                    muted: get_bool(doc, &obj, MUTED).unwrap_or(false),
                    muted_until: get_int(doc, &obj, MUTED_UNTIL),
                    pinned: get_bool(doc, &obj, PINNED).unwrap_or(false),
                    pinned_at: get_int(doc, &obj, PINNED_AT),
                    archived: get_bool(doc, &obj, ARCHIVED).unwrap_or(false),
                    archived_at: get_int(doc, &obj, ARCHIVED_AT),
                    hidden_at: get_int(doc, &obj, HIDDEN_AT),
                    notifications: parsed(
                        get_str(doc, &obj, NOTIFICATIONS),
                        NotificationLevel::parse,
                    ),
                },
            );
        }
    }
    if let Some(drafts) = get_map(doc, &ROOT, DRAFTS) {
        for key in map_keys(doc, &drafts) {
            if let (Ok(id), Some(text)) = (ConvId::new(key.clone()), get_str(doc, &drafts, &key)) {
                out.drafts.insert(id, text);
            }
        }
    }
    if let Some(scheduled) = get_map(doc, &ROOT, SCHEDULED) {
        for key in map_keys(doc, &scheduled) {
            let (Ok(id), Some(obj)) = (MessageId::new(key.clone()), get_map(doc, &scheduled, &key))
            else {
                continue;
            };
            if let (Some(conv), Some(body), Some(at)) = (
                id_of::<ConvId>(get_str(doc, &obj, CONV)),
                get_str(doc, &obj, BODY),
                get_int(doc, &obj, AT),
            ) {
                let refused = get_str(doc, &obj, REFUSED);
                out.scheduled.insert(
                    id.clone(),
                    Scheduled {
                        id,
                        conv,
                        body,
                        at,
                        refused,
                    },
                );
            }
        }
    }
    out
}
