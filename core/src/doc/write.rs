//! One user intent = one Automerge transaction, tagged with the intent (docs/SCHEMA.md,
//! "Changes").
//!
//! These functions write exactly the shapes that `validate` accepts; a client runs `policy`
//! before calling them. Time is always a parameter: core never reads a clock.

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, Change, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, ROOT,
};

use super::read::get_map;
use super::schema::{keys::*, message_shard, reaction_key};
use super::{creation_actor, genesis, DocError, IntentTag};
use crate::ids::{
    direct_conv_id, encrypted_direct_conv_id, encrypted_support_conv_id, support_conv_id,
    AccountId, ConvId, DocId, MessageId, TenantId,
};
use crate::model::account::Profile;
use crate::model::contact::Contact;
use crate::model::conversation::*;
use crate::model::message::{MessageKind, NewMessage};
use crate::model::proposal::ProposalStatus;

/// Runs `f` in one transaction tagged `tag`; nothing is written if `f` fails.
pub fn transact(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<(), DocError>,
) -> Result<Option<ChangeHash>, DocError> {
    let mut tx = doc.transaction();
    match f(&mut tx) {
        Ok(()) => {
            let (hash, _) = tx.commit_with(
                CommitOptions::default()
                    .with_message(tag.encode())
                    .with_time(now_ms.div_euclid(1000)),
            );
            Ok(hash)
        }
        Err(e) => {
            tx.rollback();
            Err(e)
        }
    }
}

fn top(tx: &Transaction<'_>, key: &'static str) -> Result<ObjId, DocError> {
    get_map(tx, &ROOT, key).ok_or(DocError::Missing(key))
}

fn opt_put(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    value: Option<impl Into<ScalarValue>>,
) -> Result<(), DocError> {
    if let Some(v) = value {
        tx.put(obj, key, v)?;
    }
    Ok(())
}

/// What a new group, channel or thread starts with.
#[derive(Debug, Clone)]
pub struct CreateConv {
    pub kind: ConvKind,
    pub created_by: AccountId,
    pub created_at: i64,
    pub bucket_ms: i64,
    pub thread: Option<ThreadLink>,
    pub info: Info,
    pub settings: Settings,
    /// The creator first, as owner; then the invited members.
    pub members: Vec<Member>,
    /// End-to-end encrypted, for good.
    pub encrypted: bool,
}

fn write_member(tx: &mut Transaction<'_>, members: &ObjId, m: &Member) -> Result<(), DocError> {
    let obj = match get_map(&*tx, members, m.account.as_str()) {
        Some(existing) => existing,
        None => tx.put_object(members, m.account.as_str(), ObjType::Map)?,
    };
    tx.put(&obj, ROLE, m.role.as_str())?;
    tx.put(&obj, STATUS, m.status.as_str())?;
    opt_put(tx, &obj, JOINED_AT, m.joined_at)?;
    opt_put(
        tx,
        &obj,
        INVITED_BY,
        m.invited_by.as_ref().map(|a| a.as_str()),
    )?;
    opt_put(tx, &obj, NICKNAME, m.nickname.as_deref())?;
    opt_put(tx, &obj, COLOR, m.color.as_deref())?;
    for (permission, allowed) in &m.overrides {
        tx.put(&obj, permission.as_str(), *allowed)?;
    }
    put_expiries(tx, &obj, m)
}

/// Writes an entry's role expiry as `m` holds it, deleting one it does not hold (a
/// re-added member keeps no temporary role of an earlier grant), and the expiries of the
/// overrides `m` writes (an override left in the entry keeps its own).
fn put_expiries(tx: &mut Transaction<'_>, obj: &ObjId, m: &Member) -> Result<(), DocError> {
    put_or_delete(tx, obj, ROLE_UNTIL, m.role_until.map(ScalarValue::Int))?;
    put_or_delete(
        tx,
        obj,
        ROLE_AFTER,
        m.role_after.map(|r| ScalarValue::Str(r.as_str().into())),
    )?;
    for permission in m.overrides.keys() {
        let key = super::schema::override_until_key(*permission);
        let until = m.overrides_until.get(permission).copied();
        put_or_delete(tx, obj, &key, until.map(ScalarValue::Int))?;
    }
    Ok(())
}

/// Puts `value`, or deletes the key where it is set and `value` is `None`.
fn put_or_delete(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    key: &str,
    value: Option<ScalarValue>,
) -> Result<(), DocError> {
    match value {
        Some(v) => tx.put(obj, key, v)?,
        None if tx.get(obj, key)?.is_some() => tx.delete(obj, key)?,
        None => {}
    }
    Ok(())
}

fn write_info(tx: &mut Transaction<'_>, info: &Info) -> Result<(), DocError> {
    let obj = top(tx, INFO)?;
    opt_put(tx, &obj, TITLE, info.title.as_deref())?;
    opt_put(tx, &obj, DESCRIPTION, info.description.as_deref())?;
    opt_put(tx, &obj, AVATAR, info.avatar.as_deref())?;
    opt_put(tx, &obj, THEME_COLOR, info.theme_color.as_deref())?;
    opt_put(tx, &obj, THEME_BACKGROUND, info.theme_background.as_deref())
}

/// Every setting as the scalar the document stores.
pub fn settings_values(s: &Settings) -> Vec<(&'static str, ScalarValue)> {
    let mut out = vec![
        (SEND_POLICY, s.send_policy.as_str().into()),
        (JOIN_POLICY, s.join_policy.as_str().into()),
        (JOIN_APPROVAL_REQUIRED, s.join_approval_required.into()),
        (INFO_EDIT_POLICY, s.info_edit_policy.as_str().into()),
        (SUBROOM_POLICY, s.subroom_policy.as_str().into()),
        (MAX_SUBROOM_DEPTH, i64::from(s.max_subroom_depth).into()),
        (SLOW_MODE_SECONDS, i64::from(s.slow_mode_seconds).into()),
        (ALLOW_REACTIONS, s.allow_reactions.into()),
        (ALLOW_STICKERS, s.allow_stickers.into()),
        (ALLOW_ATTACHMENTS, s.allow_attachments.into()),
    ];
    if let Some(days) = s.retention_days {
        out.push((RETENTION_DAYS, i64::from(days).into()));
    }
    // Written only when set, so creation changes of unlocked conversations keep their bytes.
    if s.locked {
        out.push((LOCKED, true.into()));
    }
    if s.add_members_policy != EditPolicy::AllMembers {
        out.push((ADD_MEMBERS_POLICY, s.add_members_policy.as_str().into()));
    }
    if s.scope != crate::model::joining::Scope::Private {
        out.push((SCOPE, s.scope.as_str().into()));
    }
    out
}

/// Creates a group, channel, thread or system conversation.
pub fn create_conversation(
    doc: &mut Automerge,
    tag: &IntentTag,
    spec: &CreateConv,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, spec.created_at, |tx| {
        let meta = top(tx, META)?;
        tx.put(&meta, KIND, spec.kind.as_str())?;
        tx.put(&meta, CREATED_BY, spec.created_by.as_str())?;
        tx.put(&meta, CREATED_AT, spec.created_at)?;
        tx.put(&meta, BUCKET_MS, spec.bucket_ms)?;
        if spec.encrypted {
            tx.put(&meta, ENCRYPTED, true)?;
        }
        if let Some(link) = &spec.thread {
            tx.put(&meta, PARENT, link.parent.as_str())?;
            tx.put(&meta, PARENT_MESSAGE, link.message.as_str())?;
            tx.put(&meta, DEPTH, i64::from(link.depth))?;
        }
        write_info(tx, &spec.info)?;
        let settings = top(tx, SETTINGS)?;
        for (key, value) in settings_values(&spec.settings) {
            tx.put(&settings, key, value)?;
        }
        let members = top(tx, MEMBERS)?;
        for m in &spec.members {
            write_member(tx, &members, m)?;
        }
        Ok(())
    })
}

fn deterministic_creation(
    doc_id: &DocId,
    write: impl FnOnce(&mut Transaction<'_>) -> Result<(), DocError>,
) -> Result<Change, DocError> {
    let mut doc = genesis(doc_id)?;
    doc.set_actor(creation_actor(doc_id));
    let mut tx = doc.transaction();
    write(&mut tx)?;
    tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
    doc.get_last_local_change()
        .ok_or(DocError::Missing("creation change"))
}

/// The creation change of the direct conversation of `a` and `b`: the same bytes on every
/// device, so two devices that open it offline merge into one conversation.
pub fn direct_creation_change(
    tenant: &TenantId,
    a: &AccountId,
    b: &AccountId,
) -> Result<(DocId, Change), DocError> {
    direct_creation(tenant, a, b, false)
}

/// The creation change of the end-to-end encrypted direct conversation of `a` and `b`
/// (`encrypted_direct_conv_id`, `meta/encrypted`): the same bytes on every device; its MLS
/// group follows in a change of the device that makes it (docs/E2EE.md, "Direct
/// conversations and support threads").
pub fn encrypted_direct_creation_change(
    tenant: &TenantId,
    a: &AccountId,
    b: &AccountId,
) -> Result<(DocId, Change), DocError> {
    direct_creation(tenant, a, b, true)
}

fn direct_creation(
    tenant: &TenantId,
    a: &AccountId,
    b: &AccountId,
    encrypted: bool,
) -> Result<(DocId, Change), DocError> {
    let conv = if encrypted {
        encrypted_direct_conv_id(tenant, a, b)
    } else {
        direct_conv_id(tenant, a, b)
    };
    let doc_id = DocId::conv(tenant, &conv);
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let change = deterministic_creation(&doc_id, |tx| {
        let meta = top(tx, META)?;
        tx.put(&meta, KIND, ConvKind::Direct.as_str())?;
        tx.put(&meta, CREATED_AT, 0_i64)?;
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS)?;
        if encrypted {
            tx.put(&meta, ENCRYPTED, true)?;
        }
        let members = top(tx, MEMBERS)?;
        for account in [lo, hi] {
            write_member(tx, &members, &Member::new(account.clone(), Role::Member))?;
        }
        Ok(())
    })?;
    Ok((doc_id, change))
}

/// The creation change of a client's support thread about a resource.
pub fn support_creation_change(
    tenant: &TenantId,
    link: &ResourceLink,
) -> Result<(DocId, Change), DocError> {
    support_creation(tenant, link, false)
}

/// The creation change of a client's end-to-end encrypted support thread about a resource
/// (`encrypted_support_conv_id`, `meta/encrypted`): the same bytes on every device; its MLS
/// group follows in a change of the device that makes it (docs/E2EE.md, "Direct
/// conversations and support threads").
pub fn encrypted_support_creation_change(
    tenant: &TenantId,
    link: &ResourceLink,
) -> Result<(DocId, Change), DocError> {
    support_creation(tenant, link, true)
}

fn support_creation(
    tenant: &TenantId,
    link: &ResourceLink,
    encrypted: bool,
) -> Result<(DocId, Change), DocError> {
    let conv = if encrypted {
        encrypted_support_conv_id(tenant, &link.client, &link.resource)
    } else {
        support_conv_id(tenant, &link.client, &link.resource)
    };
    let doc_id = DocId::conv(tenant, &conv);
    let change = deterministic_creation(&doc_id, |tx| {
        let meta = top(tx, META)?;
        tx.put(&meta, KIND, ConvKind::Support.as_str())?;
        tx.put(&meta, CREATED_AT, 0_i64)?;
        tx.put(&meta, BUCKET_MS, DEFAULT_BUCKET_MS)?;
        if encrypted {
            tx.put(&meta, ENCRYPTED, true)?;
        }
        tx.put(&meta, RESOURCE, link.resource.as_str())?;
        tx.put(&meta, CLIENT, link.client.as_str())?;
        tx.put(&meta, OWNER, link.owner.as_str())?;
        let members = top(tx, MEMBERS)?;
        write_member(tx, &members, &Member::new(link.owner.clone(), Role::Owner))?;
        if link.client != link.owner {
            write_member(
                tx,
                &members,
                &Member::new(link.client.clone(), Role::Member),
            )?;
        }
        Ok(())
    })?;
    Ok((doc_id, change))
}

/// Applies a deterministic creation change unless the document has it already.
pub fn apply_creation(doc: &mut Automerge, change: Change) -> Result<(), DocError> {
    if doc.get_change_by_hash(&change.hash()).is_none() {
        doc.apply_changes([change])?;
    }
    Ok(())
}

/// Adds a member, or brings a former one back (status active).
pub fn add_member(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    member: &Member,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| put_member(tx, member))
}

/// [`add_member`] inside a transaction of the caller's (with an MLS commit, say).
pub fn put_member(tx: &mut Transaction<'_>, member: &Member) -> Result<(), DocError> {
    let members = top(tx, MEMBERS)?;
    write_member(tx, &members, member)
}

fn member_obj(tx: &Transaction<'_>, account: &AccountId) -> Result<ObjId, DocError> {
    let members = top(tx, MEMBERS)?;
    get_map(tx, &members, account.as_str())
        .ok_or_else(|| DocError::NotApplicable(format!("{account} is not a member")))
}

/// Leave (own account), remove or ban (others), or reinstate.
pub fn set_member_status(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    status: MemberStatus,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        put_member_status(tx, now_ms, account, status)
    })
}

/// [`set_member_status`] inside a transaction of the caller's (with an MLS commit, say).
pub fn put_member_status(
    tx: &mut Transaction<'_>,
    now_ms: i64,
    account: &AccountId,
    status: MemberStatus,
) -> Result<(), DocError> {
    let obj = member_obj(tx, account)?;
    tx.put(&obj, STATUS, status.as_str())?;
    match status {
        MemberStatus::Left => tx.put(&obj, LEFT_AT, now_ms)?,
        MemberStatus::Removed | MemberStatus::Banned => tx.put(&obj, REMOVED_AT, now_ms)?,
        MemberStatus::Active => tx.put(&obj, JOINED_AT, now_ms)?,
        // A request records nothing but itself; see `policy::joining`.
        MemberStatus::Requested => {}
    }
    Ok(())
}

/// What an encrypted conversation's MLS group gains in one change (docs/E2EE.md, "The group
/// in the document").
#[derive(Debug, Clone, Copy)]
pub enum MlsWrite<'a> {
    /// The group a member's device just made, at epoch 0 with only that device.
    Init {
        group_info: &'a [u8],
        tree: &'a [u8],
    },
    /// The commit that moves the group from `epoch` to the next, and the Welcome of the
    /// devices it adds.
    Commit {
        epoch: u64,
        commit: &'a [u8],
        welcome: Option<&'a [u8]>,
    },
}

/// Writes `mls` inside a transaction of the caller's.
pub fn put_mls(tx: &mut Transaction<'_>, now_ms: i64, mls: MlsWrite<'_>) -> Result<(), DocError> {
    let epoch_key = |e: u64| e.to_string();
    match mls {
        MlsWrite::Init { group_info, tree } => {
            let obj = tx.put_object(ROOT, MLS, ObjType::Map)?;
            tx.put(&obj, GROUP_INFO, ScalarValue::Bytes(group_info.to_vec()))?;
            tx.put(&obj, TREE, ScalarValue::Bytes(tree.to_vec()))?;
            tx.put_object(&obj, COMMITS, ObjType::Map)?;
            tx.put_object(&obj, WELCOMES, ObjType::Map)?;
            tx.put(&obj, EPOCH, 0_i64)?;
            tx.put(&obj, AT, now_ms)?;
        }
        MlsWrite::Commit {
            epoch,
            commit,
            welcome,
        } => {
            let obj = top(tx, MLS)?;
            let commits = get_map(&*tx, &obj, COMMITS).ok_or(DocError::Missing(COMMITS))?;
            tx.put(
                &commits,
                epoch_key(epoch),
                ScalarValue::Bytes(commit.to_vec()),
            )?;
            if let Some(welcome) = welcome {
                let welcomes = get_map(&*tx, &obj, WELCOMES).ok_or(DocError::Missing(WELCOMES))?;
                tx.put(
                    &welcomes,
                    epoch_key(epoch),
                    ScalarValue::Bytes(welcome.to_vec()),
                )?;
            }
            let next = i64::try_from(epoch.saturating_add(1)).unwrap_or(i64::MAX);
            tx.put(&obj, EPOCH, next)?;
            tx.put(&obj, AT, now_ms)?;
        }
    }
    Ok(())
}

/// Writes `mls` in a change of its own (a group made, or a commit that changes no member).
pub fn write_mls(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    mls: MlsWrite<'_>,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| put_mls(tx, now_ms, mls))
}

/// Gives `account` `role`, for good (`until` `None`) or until the server time `until`,
/// after which it has the role it goes back to now (`Member::granted`).
pub fn set_role(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    role: Role,
    until: Option<i64>,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = member_obj(tx, account)?;
        let members = top(tx, MEMBERS)?;
        let current = super::read::read_member(&*tx, &members, account)
            .ok_or_else(|| DocError::NotApplicable(format!("{account} is not a member")))?;
        let granted = current.granted(role, until, now_ms);
        tx.put(&obj, ROLE, role.as_str())?;
        put_or_delete(
            tx,
            &obj,
            ROLE_UNTIL,
            granted.role_until.map(ScalarValue::Int),
        )?;
        let after = granted
            .role_after
            .map(|r| ScalarValue::Str(r.as_str().into()));
        put_or_delete(tx, &obj, ROLE_AFTER, after)
    })
}

/// Moves ownership from `owner` to `to` in one change: `to` becomes owner (its
/// permission overrides dropped: nobody restricts an owner), `owner` becomes admin. The
/// policy takes the two writes together as a transfer (docs/POLICY.md, "Members").
pub fn transfer_ownership(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    owner: &AccountId,
    to: &AccountId,
) -> Result<Option<ChangeHash>, DocError> {
    if owner == to {
        return Err(DocError::NotApplicable(
            "ownership goes to another member".into(),
        ));
    }
    transact(doc, tag, now_ms, |tx| {
        let new_owner = member_obj(tx, to)?;
        let old_owner = member_obj(tx, owner)?;
        tx.put(&new_owner, ROLE, Role::Owner.as_str())?;
        // The owner role is never temporary, and nobody restricts an owner.
        for permission in Permission::ALL {
            put_or_delete(tx, &new_owner, permission.as_str(), None)?;
            let until = super::schema::override_until_key(*permission);
            put_or_delete(tx, &new_owner, &until, None)?;
        }
        put_expiries(tx, &new_owner, &Member::new(to.clone(), Role::Owner))?;
        tx.put(&old_owner, ROLE, Role::Admin.as_str())?;
        Ok(())
    })
}

/// Sets (`Some`) or clears (`None`) a member's permission override; a set one holds for
/// good (`until` `None`) or until the server time `until`.
pub fn set_override(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    permission: Permission,
    allowed: Option<bool>,
    until: Option<i64>,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = member_obj(tx, account)?;
        put_or_delete(
            tx,
            &obj,
            permission.as_str(),
            allowed.map(ScalarValue::Boolean),
        )?;
        let until = until.filter(|_| allowed.is_some()).map(ScalarValue::Int);
        put_or_delete(
            tx,
            &obj,
            &super::schema::override_until_key(permission),
            until,
        )
    })
}

/// Sets a member's own nickname or color (`field` is `nickname` or `color`).
pub fn set_member_field(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    field: &'static str,
    value: &str,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = member_obj(tx, account)?;
        tx.put(&obj, field, value)?;
        Ok(())
    })
}

/// Sets whether `account` blocks the other member of a direct conversation.
pub fn set_blocked(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    on: bool,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = member_obj(tx, account)?;
        tx.put(&obj, BLOCKED, on)?;
        Ok(())
    })
}

/// Sets or clears one `info` field (title, description, avatar, theme).
pub fn set_info(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    field: &'static str,
    value: Option<&str>,
) -> Result<Option<ChangeHash>, DocError> {
    if let Some(v) = value {
        check_info(field, v)?;
    }
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, INFO)?;
        match value {
            Some(v) => tx.put(&obj, field, v)?,
            None => tx.delete(&obj, field)?,
        }
        Ok(())
    })
}

/// The limits `validate` puts on an info field (URLs `https:` only: what this writer writes
/// whatever the server allows).
fn check_info(field: &str, value: &str) -> Result<(), crate::ModelError> {
    use crate::error::check_chars;
    use crate::limits::{DESCRIPTION_MAX_CHARS, TITLE_MAX_CHARS};
    use crate::model::account::validate_url;
    match field {
        TITLE => check_chars("title", value, TITLE_MAX_CHARS),
        DESCRIPTION => check_chars("description", value, DESCRIPTION_MAX_CHARS),
        AVATAR => validate_url("avatar", value),
        THEME_BACKGROUND => validate_url("theme_background", value),
        CLIENT_NAME | OWNER_NAME => {
            check_chars("name", value, crate::model::support::NAME_MAX_CHARS)
        }
        _ => check_chars("theme_color", value, 32),
    }
}

/// Sets one setting.
pub fn set_setting(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    key: &'static str,
    value: ScalarValue,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, SETTINGS)?;
        tx.put(&obj, key, value)?;
        Ok(())
    })
}

/// Several settings in one change (REST's settings patch).
pub fn set_settings(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    values: &[(&'static str, ScalarValue)],
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, SETTINGS)?;
        for (key, value) in values {
            tx.put(&obj, *key, value.clone())?;
        }
        Ok(())
    })
}

pub fn pin(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
    by: &AccountId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let pins = top(tx, PINS)?;
        let obj = tx.put_object(&pins, message.as_str(), ObjType::Map)?;
        tx.put(&obj, BY, by.as_str())?;
        tx.put(&obj, AT, now_ms)?;
        Ok(())
    })
}

pub fn unpin(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let pins = top(tx, PINS)?;
        tx.delete(&pins, message.as_str())?;
        Ok(())
    })
}

/// Moves the account's read marker to `message`.
pub fn mark_read(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    message: &MessageId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let reads = top(tx, READS)?;
        tx.put(&reads, account.as_str(), message.as_str())?;
        Ok(())
    })
}

/// Moves the account's delivery marker (`members/<account>/delivered`) to `message`.
pub fn mark_delivered(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    account: &AccountId,
    message: &MessageId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = member_obj(tx, account)?;
        tx.put(&obj, DELIVERED, message.as_str())?;
        Ok(())
    })
}

/// Archive, close or reopen.
pub fn set_lifecycle(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    state: Lifecycle,
    by: &AccountId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, LIFECYCLE)?;
        tx.put(&obj, STATE, state.as_str())?;
        tx.put(&obj, BY, by.as_str())?;
        tx.put(&obj, AT, now_ms)?;
        Ok(())
    })
}

/// Reopens a closed support thread with a new lead (a client's new request): the state,
/// who and when, and the lead in one change.
pub fn reopen_with_lead(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    by: &AccountId,
    lead: &crate::ids::LeadId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, LIFECYCLE)?;
        tx.put(&obj, STATE, Lifecycle::Active.as_str())?;
        tx.put(&obj, BY, by.as_str())?;
        tx.put(&obj, AT, now_ms)?;
        tx.put(&obj, LEAD, lead.as_str())?;
        Ok(())
    })
}

/// Closes a support thread with its lead's outcome (won or lost): the state, who
/// and when, the outcome and the reason (empty: none) in one change.
pub fn close_lead(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    by: &AccountId,
    outcome: crate::model::support::LeadOutcome,
    reason: Option<&str>,
) -> Result<Option<ChangeHash>, DocError> {
    let reason = reason.unwrap_or_default();
    crate::error::check_chars("reason", reason, crate::model::support::REASON_MAX_CHARS)?;
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, LIFECYCLE)?;
        tx.put(&obj, STATE, Lifecycle::Closed.as_str())?;
        tx.put(&obj, BY, by.as_str())?;
        tx.put(&obj, AT, now_ms)?;
        tx.put(&obj, OUTCOME, outcome.as_str())?;
        tx.put(&obj, REASON, reason)?;
        Ok(())
    })
}

/// Names the lead a support thread is about now.
pub fn set_lead(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    lead: &crate::ids::LeadId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, LIFECYCLE)?;
        tx.put(&obj, LEAD, lead.as_str())?;
        Ok(())
    })
}

/// The info fields of `names` (field, value) that the document does not hold yet, in one
/// change (support threads opened with the platform's title and names); nothing when all
/// are set.
pub fn name_unset(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    names: &[(&'static str, &str)],
) -> Result<Option<ChangeHash>, DocError> {
    for (field, value) in names {
        check_info(field, value)?;
    }
    transact(doc, tag, now_ms, |tx| {
        let obj = top(tx, INFO)?;
        for (field, value) in names {
            if super::read::get_str(&*tx, &obj, field).is_none() {
                tx.put(&obj, *field, *value)?;
            }
        }
        Ok(())
    })
}

/// Appends a message to a bucket document. Proposals start `pending`.
pub fn post_message(
    doc: &mut Automerge,
    tag: &IntentTag,
    message: &NewMessage,
) -> Result<Option<ChangeHash>, DocError> {
    message.validate()?;
    transact(doc, tag, message.created_at, |tx| {
        let shard = message_shard_obj(tx, &message.id)?;
        if get_map(&*tx, &shard, message.id.as_str()).is_some() {
            return Err(DocError::NotApplicable(format!(
                "message {} exists",
                message.id
            )));
        }
        let obj = tx.put_object(&shard, message.id.as_str(), ObjType::Map)?;
        tx.put(&obj, AUTHOR, message.author.as_str())?;
        tx.put(&obj, KIND, message.kind.as_str())?;
        tx.put(&obj, BODY, message.body.as_str())?;
        tx.put(&obj, CREATED_AT, message.created_at)?;
        opt_put(tx, &obj, PAYLOAD, message.payload.as_deref())?;
        opt_put(tx, &obj, CAPTION, message.caption.as_deref())?;
        if let Some(sealed) = &message.sealed {
            tx.put(&obj, SEALED, ScalarValue::Bytes(sealed.clone()))?;
        }
        opt_put(tx, &obj, BLOBS, message.blobs.as_deref())?;
        opt_put(tx, &obj, ATTACHMENTS, message.attachments.as_deref())?;
        opt_put(tx, &obj, MENTIONS, message.mentions.as_deref())?;
        opt_put(
            tx,
            &obj,
            REPLY_TO,
            message.reply_to.as_ref().map(|m| m.as_str()),
        )?;
        opt_put(
            tx,
            &obj,
            FORWARDED_FROM,
            message.forwarded_from.as_ref().map(|f| f.encode()),
        )?;
        opt_put(tx, &obj, SCHEDULED_AT, message.scheduled_at)?;
        let stamp = &message.stamp;
        opt_put(tx, &obj, SENDER_ROLE, stamp.sender_role.map(|r| r.as_str()))?;
        opt_put(tx, &obj, SENDER_NAME, stamp.sender_name.as_deref())?;
        opt_put(
            tx,
            &obj,
            RELATED_LEAD,
            stamp.related_lead.as_ref().map(|l| l.as_str()),
        )?;
        if message.kind == MessageKind::Proposal {
            tx.put(&obj, STATUS, ProposalStatus::Pending.as_str())?;
        }
        Ok(())
    })
}

/// The genesis shard map a message lives in.
fn message_shard_obj(tx: &Transaction<'_>, message: &MessageId) -> Result<ObjId, DocError> {
    let messages = top(tx, MESSAGES)?;
    get_map(tx, &messages, &message_shard(message.as_str()))
        .ok_or(DocError::Missing("message shard"))
}

fn message_obj(tx: &Transaction<'_>, message: &MessageId) -> Result<ObjId, DocError> {
    let shard = message_shard_obj(tx, message)?;
    get_map(tx, &shard, message.as_str())
        .ok_or_else(|| DocError::NotApplicable(format!("no message {message} in this bucket")))
}

pub fn edit_body(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
    body: &str,
) -> Result<Option<ChangeHash>, DocError> {
    crate::error::check_chars("body", body, crate::limits::BODY_MAX_CHARS)?;
    transact(doc, tag, now_ms, |tx| {
        let obj = message_obj(tx, message)?;
        tx.put(&obj, BODY, body)?;
        tx.put(&obj, EDITED_AT, now_ms)?;
        Ok(())
    })
}

/// Gives an encrypted conversation's message a new sealed content (`sealed`, its edit as the
/// author's device sealed it) and `edited_at`: nothing in the clear.
pub fn edit_sealed(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
    sealed: &[u8],
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = message_obj(tx, message)?;
        tx.put(&obj, SEALED, ScalarValue::Bytes(sealed.to_vec()))?;
        tx.put(&obj, EDITED_AT, now_ms)?;
        Ok(())
    })
}

/// Tombstones a message for everyone: every field but the tombstone's
/// ([`super::schema::TOMBSTONE_FIELDS`]) is removed, and `deleted_at` and `deleted_by` (the
/// deleting account: the change's own) are set, in one change: the acceptor takes nothing
/// less (`incomplete_redaction`).
pub fn delete_message(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
    by: &AccountId,
) -> Result<Option<ChangeHash>, DocError> {
    delete_messages(doc, tag, now_ms, std::slice::from_ref(message), by)
}

/// [`delete_message`] for several messages of one part in one change: account erasure
/// tombstones a page of an account's messages at once. The acceptor checks each message as
/// if it were deleted alone; one it refuses refuses the change.
pub fn delete_messages(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    messages: &[MessageId],
    by: &AccountId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        for message in messages {
            let obj = message_obj(tx, message)?;
            let content: Vec<String> = tx
                .keys(&obj)
                .filter(|k| !super::schema::TOMBSTONE_FIELDS.contains(&k.as_str()))
                .collect();
            for key in content {
                tx.delete(&obj, key.as_str())?;
            }
            tx.put(&obj, DELETED_AT, now_ms)?;
            tx.put(&obj, DELETED_BY, by.as_str())?;
        }
        Ok(())
    })
}

/// Adds (`true`) or removes (`false`) the account's reaction.
pub fn react(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    message: &MessageId,
    account: &AccountId,
    emoji: &str,
    on: bool,
) -> Result<Option<ChangeHash>, DocError> {
    crate::model::attachment::validate_reaction(emoji)?;
    transact(doc, tag, now_ms, |tx| {
        let reactions = top(tx, REACTIONS)?;
        let key = reaction_key(message.as_str(), account.as_str(), emoji);
        if on {
            tx.put(&reactions, key, now_ms)?;
        } else {
            tx.delete(&reactions, key)?;
        }
        Ok(())
    })
}

/// The counterparty's answer to a proposal in the same bucket: status update only. The
/// `proposal_response` message is posted with `post_message`, possibly in a newer bucket.
pub fn set_proposal_status(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    proposal: &MessageId,
    status: ProposalStatus,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let obj = message_obj(tx, proposal)?;
        tx.put(&obj, STATUS, status.as_str())?;
        Ok(())
    })
}

/// Writes the profile fields that differ from the document.
pub fn set_profile(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    profile: &Profile,
) -> Result<Option<ChangeHash>, DocError> {
    profile.validate()?;
    transact(doc, tag, now_ms, |tx| {
        tx.put(ROOT, KIND, profile.kind.as_str())?;
        tx.put(ROOT, DISPLAY_NAME, profile.display_name.as_str())?;
        for (key, value) in [
            (AVATAR, &profile.avatar),
            (BIO, &profile.bio),
            (STATUS, &profile.status),
        ] {
            match value {
                Some(v) => tx.put(ROOT, key, v.as_str())?,
                None if tx.get(ROOT, key)?.is_some() => tx.delete(ROOT, key)?,
                None => {}
            }
        }
        Ok(())
    })
}

/// Adds or replaces a contact in the private document.
pub fn set_contact(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &crate::ids::ContactId,
    contact: &Contact,
) -> Result<Option<ChangeHash>, DocError> {
    contact.validate()?;
    transact(doc, tag, now_ms, |tx| {
        let contacts = top(tx, CONTACTS)?;
        let obj = tx.put_object(&contacts, id.as_str(), ObjType::Map)?;
        tx.put(&obj, KIND, contact.kind.as_str())?;
        opt_put(tx, &obj, PHONE, contact.phone.as_deref())?;
        opt_put(tx, &obj, EMAIL, contact.email.as_deref())?;
        opt_put(
            tx,
            &obj,
            ACCOUNT,
            contact.account.as_ref().map(|a| a.as_str()),
        )?;
        opt_put(tx, &obj, NICKNAME, contact.nickname.as_deref())
    })
}

/// Removes a contact from the private document (nothing to write if it is not there).
pub fn remove_contact(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    id: &crate::ids::ContactId,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let contacts = top(tx, CONTACTS)?;
        if tx.get(&contacts, id.as_str())?.is_some() {
            tx.delete(&contacts, id.as_str())?;
        }
        Ok(())
    })
}

/// Sets one per-conversation preference (muted, pinned, archived, notifications, ...).
pub fn set_conv_pref(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    conv: &ConvId,
    key: &'static str,
    value: ScalarValue,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let convs = top(tx, CONVS)?;
        let obj = match get_map(&*tx, &convs, conv.as_str()) {
            Some(obj) => obj,
            None => tx.put_object(&convs, conv.as_str(), ObjType::Map)?,
        };
        tx.put(&obj, key, value)?;
        Ok(())
    })
}

/// Hides (`Some(at)`, server time) or shows again (`None`) a direct conversation in the
/// account's own list (`convs/<conv>/hidden_at`).
pub fn set_hidden(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    conv: &ConvId,
    at: Option<i64>,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let convs = top(tx, CONVS)?;
        match (get_map(&*tx, &convs, conv.as_str()), at) {
            (Some(obj), Some(at)) => tx.put(&obj, HIDDEN_AT, at)?,
            (None, Some(at)) => {
                let obj = tx.put_object(&convs, conv.as_str(), ObjType::Map)?;
                tx.put(&obj, HIDDEN_AT, at)?;
            }
            (Some(obj), None) => {
                if tx.get(&obj, HIDDEN_AT)?.is_some() {
                    tx.delete(&obj, HIDDEN_AT)?;
                }
            }
            (None, None) => {}
        }
        Ok(())
    })
}

/// Saves (`Some`) or clears (`None`) the draft of a conversation.
pub fn set_draft(
    doc: &mut Automerge,
    tag: &IntentTag,
    now_ms: i64,
    conv: &ConvId,
    text: Option<&str>,
) -> Result<Option<ChangeHash>, DocError> {
    transact(doc, tag, now_ms, |tx| {
        let drafts = top(tx, DRAFTS)?;
        match text {
            Some(t) => tx.put(&drafts, conv.as_str(), t)?,
            None => tx.delete(&drafts, conv.as_str())?,
        }
        Ok(())
    })
}

/// Sets the local writer of a document (each device has its own actor per account).
pub fn with_actor(doc: Automerge, actor: ActorId) -> Automerge {
    doc.with_actor(actor)
}
