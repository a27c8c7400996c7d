//! Turns a change's path-ops into domain effects, checking every key and value against the
//! schema on the way. Everything not named here is refused.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ScalarValue;

use super::codes::RejectCode;
use super::ops::{Action, Failure, PathOp};
use super::state::AcceptedDoc;
use super::Env;
use crate::doc::read;
use crate::doc::schema::{self, keys::*, split_reaction_key, FieldType};
use crate::error::{check_chars, ModelError};
use crate::ids::{AccountId, ContactId, ConvId, DocTarget, LeadId, MessageId, ResourceId};
use crate::limits::*;
use crate::model::account::{validate_bio, validate_display_name, validate_status, AccountKind};
use crate::model::attachment::validate_reaction;
use crate::model::contact::{validate_e164, validate_email, ContactKind};
use crate::model::conversation::*;
use crate::model::message::{ForwardedFrom, Message, MessageKind, NewMessage};
use crate::model::proposal::ProposalStatus;
use crate::model::schedule::SCHEDULE_MAX_PENDING;
use crate::model::support::{self as support, LeadOutcome, SenderRole, Stamp};
use crate::model::url::{validate_url_with, UrlRule};
use crate::policy::Effect;

fn model(e: ModelError) -> Failure {
    (RejectCode::from(&e), e.to_string())
}

fn unknown(path: &[String]) -> Failure {
    (
        RejectCode::UnknownKey,
        format!("{} is not part of the schema", path.join("/")),
    )
}

fn immutable(path: &[String]) -> Failure {
    (
        RejectCode::Policy(crate::policy::DenyCode::ImmutableField),
        format!("{} cannot be written this way", path.join("/")),
    )
}

/// A typed scalar put at `path` whose last key names a field of `table`.
fn typed<'a>(
    table: &[(&str, FieldType)],
    op: &'a PathOp,
) -> Result<Option<&'a ScalarValue>, Failure> {
    let field = op.path.last().map(String::as_str).unwrap_or_default();
    let Some(expected) = schema::field_type(table, field) else {
        return Err(unknown(&op.path));
    };
    match &op.action {
        Action::Delete => Ok(None),
        Action::MakeMap => Err((
            RejectCode::WrongType,
            format!(
                "{} holds a {}, not a map",
                op.path.join("/"),
                expected.name()
            ),
        )),
        Action::Put(v) => {
            let ok = matches!(
                (expected, v),
                (FieldType::Str, ScalarValue::Str(_))
                    | (FieldType::Int, ScalarValue::Int(_))
                    | (FieldType::Bool, ScalarValue::Boolean(_))
                    | (FieldType::Bytes, ScalarValue::Bytes(_))
            );
            if ok {
                Ok(Some(v))
            } else {
                Err((
                    RejectCode::WrongType,
                    format!("{} holds a {}", op.path.join("/"), expected.name()),
                ))
            }
        }
    }
}

fn text(v: &ScalarValue) -> &str {
    match v {
        ScalarValue::Str(s) => s.as_str(),
        _ => "",
    }
}

fn int(v: &ScalarValue) -> i64 {
    match v {
        ScalarValue::Int(i) => *i,
        _ => 0,
    }
}

fn boolean(v: &ScalarValue) -> bool {
    matches!(v, ScalarValue::Boolean(true))
}

fn uint(field: &'static str, v: &ScalarValue, max: u32) -> Result<u32, Failure> {
    u32::try_from(int(v))
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| {
            model(ModelError::OutOfRange {
                field,
                reason: format!("0..={max}"),
            })
        })
}

pub(super) fn effects(
    doc: &AcceptedDoc,
    env: &Env<'_>,
    ops: &[PathOp],
) -> Result<Vec<Effect>, Failure> {
    match doc.id().target() {
        DocTarget::Conv(id) => conv_effects(doc, env, id, ops),
        DocTarget::Msgs(..) => msgs_effects(doc, env, ops),
        DocTarget::Profile(owner) => {
            for op in ops {
                profile_field(op, env.urls)?;
            }
            Ok(vec![Effect::WriteOwnDoc {
                owner: owner.clone(),
            }])
        }
        DocTarget::Private(owner) => {
            for op in ops {
                private_op(op)?;
            }
            pending_schedules(doc, ops)?;
            let mut effects = vec![Effect::WriteOwnDoc {
                owner: owner.clone(),
            }];
            let convs = private_text(doc, ops);
            if !convs.is_empty() {
                effects.push(Effect::PrivateText { convs });
            }
            Ok(effects)
        }
    }
}

// ---------- conversations ----------

fn conv_effects(
    doc: &AcceptedDoc,
    env: &Env<'_>,
    id: &ConvId,
    ops: &[PathOp],
) -> Result<Vec<Effect>, Failure> {
    let owned;
    let before = match env.conv {
        Some(c) => c,
        None => {
            owned = read::read_conversation(doc.doc(), id.clone());
            &owned
        }
    };
    if ops
        .iter()
        .any(|o| o.path.first().map(String::as_str) == Some(META))
    {
        return creation(before, ops, env.urls)
            .map(|c| vec![Effect::CreateConversation(Box::new(c))]);
    }
    let mut out = Vec::new();
    let mut members: MemberWrites = BTreeMap::new();
    let mut lifecycle: BTreeMap<&str, &ScalarValue> = BTreeMap::new();
    let (mut lead_written, mut outcome_written) = (false, false);
    // The lead written, when nothing else of the closure is (a new request's change).
    let mut lead_alone: Option<LeadId> = None;
    let mut closure_written = false;
    let mut mls = MlsOps::default();
    for op in ops {
        let p: Vec<&str> = op.path.iter().map(String::as_str).collect();
        match p.as_slice() {
            [MLS, ..] => mls.take(before, op, &p[1..])?,
            [INFO, _] => {
                if let Some(v) = typed(schema::INFO_FIELDS, op)? {
                    info_value(&p[1..], v, env.urls)?;
                }
                out.push(Effect::SetInfo {
                    field: op.path[1].clone(),
                });
            }
            [SETTINGS, _] => {
                let Some(v) = typed(schema::SETTINGS_FIELDS, op)? else {
                    return Err(immutable(&op.path));
                };
                let mut probe = before.settings.clone();
                setting_value(&mut probe, &op.path[1], v)?;
                out.push(Effect::SetSetting {
                    key: op.path[1].clone(),
                });
            }
            [MEMBERS, account] => {
                let account = AccountId::new(*account).map_err(model)?;
                if op.action != Action::MakeMap || op.replaces {
                    return Err(immutable(&op.path));
                }
                members.insert(
                    account.clone(),
                    (None, Member::new(account, Role::Member), Vec::new()),
                );
            }
            [MEMBERS, account, DELIVERED] => {
                let account = AccountId::new(*account).map_err(model)?;
                // Only on an entry that exists: a new member starts without a marker.
                if op.in_new_object || before.member(&account).is_none() {
                    return Err(unknown(&op.path));
                }
                match &op.action {
                    Action::Put(ScalarValue::Str(m)) => {
                        MessageId::new(m.as_str()).map_err(model)?;
                    }
                    _ => {
                        return Err((
                            RejectCode::WrongType,
                            "a delivery marker is a message id".into(),
                        ))
                    }
                }
                out.push(Effect::MarkDelivered { account });
            }
            [MEMBERS, account, field] => {
                let account = AccountId::new(*account).map_err(model)?;
                let entry = match members.get_mut(&account) {
                    Some(e) => e,
                    None if op.in_new_object => return Err(unknown(&op.path)),
                    None => {
                        let Some(existing) = before.member(&account) else {
                            return Err((
                                RejectCode::UnknownObject,
                                format!("{account} has no member entry"),
                            ));
                        };
                        members.entry(account).or_insert((
                            Some(existing.clone()),
                            existing.clone(),
                            Vec::new(),
                        ))
                    }
                };
                member_field(&mut entry.1, field, op)?;
                entry.2.push((*field).to_owned());
            }
            [PINS, message] => {
                let message = MessageId::new(*message).map_err(model)?;
                match op.action {
                    Action::MakeMap if !op.replaces => {
                        let by = pin_by(ops, &op.path)?;
                        out.push(Effect::Pin { message, by });
                    }
                    Action::Delete => out.push(Effect::Unpin { message }),
                    _ => return Err(immutable(&op.path)),
                }
            }
            [PINS, _, _] if op.in_new_object => {
                typed(schema::PIN_FIELDS, op)?;
            }
            [READS, account] => {
                let account = AccountId::new(*account).map_err(model)?;
                match &op.action {
                    Action::Put(ScalarValue::Str(m)) => {
                        MessageId::new(m.as_str()).map_err(model)?;
                    }
                    _ => {
                        return Err((
                            RejectCode::WrongType,
                            "a read marker is a message id".into(),
                        ))
                    }
                }
                out.push(Effect::MarkRead { account });
            }
            [LIFECYCLE, field @ (OUTCOME | REASON | LEAD)] => {
                let Some(v) = typed(schema::LEAD_FIELDS, op)? else {
                    return Err(immutable(&op.path));
                };
                match *field {
                    OUTCOME => {
                        LeadOutcome::parse(text(v)).map_err(model)?;
                        outcome_written = true;
                        closure_written = true;
                    }
                    REASON => {
                        check_chars("reason", text(v), support::REASON_MAX_CHARS).map_err(model)?;
                        closure_written = true;
                    }
                    _ => {
                        lead_alone = Some(LeadId::new(text(v)).map_err(model)?);
                    }
                }
                lead_written = true;
            }
            [LIFECYCLE, field] => {
                let Some(v) = typed(schema::LIFECYCLE_FIELDS, op)? else {
                    return Err(immutable(&op.path));
                };
                lifecycle.insert(field, v);
            }
            _ => return Err(unknown(&op.path)),
        }
    }
    for (before_m, _, fields) in members.values() {
        // A new entry is written whole; its fields must make a valid member.
        if before_m.is_none()
            && (!fields.iter().any(|f| f == ROLE) || !fields.iter().any(|f| f == STATUS))
        {
            return Err(model(ModelError::Missing {
                field: "member role and status",
            }));
        }
    }
    for (_, after, _) in members.values() {
        expiries_whole(after)?;
    }
    if let Some(transfer) = ownership_transfer(&mut members) {
        out.push(Effect::TransferOwnership(Box::new(transfer)));
    }
    for (account, (before_m, mut after, fields)) in members {
        after.account = account;
        let rejoin = before_m.as_ref().is_some_and(|b| !b.is_active()) && after.is_active();
        out.push(if before_m.is_none() || rejoin {
            Effect::AddMember {
                before: before_m,
                after,
            }
        } else {
            Effect::UpdateMember {
                before: before_m.unwrap_or_else(|| after.clone()),
                after,
                fields,
            }
        });
    }
    out.extend(mls.effects(before)?);
    removals_carry_commit(before, &out)?;
    // Reopening a closed thread with a lead in one change is one effect: a new request.
    let reopened = before.lifecycle.state == Lifecycle::Closed
        && lifecycle
            .get(STATE)
            .is_some_and(|v| text(v) == Lifecycle::Active.as_str());
    if let (true, false, Some(lead)) = (reopened, closure_written, &lead_alone) {
        // As below: a put that changes nothing is left out and keeps the value before.
        let by = match lifecycle.get(BY) {
            Some(v) => Some(AccountId::new(text(v)).map_err(model)?),
            None => before.lifecycle.by.clone(),
        };
        let at = lifecycle.contains_key(AT) || before.lifecycle.at.is_some();
        let Some(by) = by.filter(|_| at) else {
            return Err(model(ModelError::Missing {
                field: "lifecycle state, by and at",
            }));
        };
        out.push(Effect::NewRequest {
            by,
            lead: lead.clone(),
        });
        return Ok(out);
    }
    if lead_written {
        let closed_after = match lifecycle.get(STATE) {
            Some(v) => Lifecycle::parse(text(v)).map_err(model)? == Lifecycle::Closed,
            None => before.lifecycle.state == Lifecycle::Closed,
        };
        out.push(Effect::SetLead {
            outcome: outcome_written,
            closed_after,
        });
    }
    if !lifecycle.is_empty() {
        let to = lifecycle
            .get(STATE)
            .map(|v| Lifecycle::parse(text(v)))
            .transpose()
            .map_err(model)?;
        let by = lifecycle
            .get(BY)
            .map(|v| AccountId::new(text(v)))
            .transpose()
            .map_err(model)?;
        // Automerge leaves out a put that does not change the value (the same account
        // moving it again, or the same millisecond): such a field keeps its value before.
        let was = &before.lifecycle;
        let to = to.or_else(|| was.at.map(|_| was.state));
        let by = by.or_else(|| was.by.clone());
        let at = lifecycle.contains_key(AT) || was.at.is_some();
        match (to, by, at) {
            (Some(to), Some(by), true) => out.push(Effect::SetLifecycle { to, by }),
            _ => {
                return Err(model(ModelError::Missing {
                    field: "lifecycle state, by and at",
                }))
            }
        }
    }
    Ok(out)
}

/// A temporary role has both its keys (until when, and the role after), and an override's
/// expiry has its override: an entry a change leaves otherwise reads differently on every
/// replica's guess (`invalid_value`).
fn expiries_whole(m: &Member) -> Result<(), Failure> {
    if m.role_until.is_some() != m.role_after.is_some() {
        return Err((
            RejectCode::InvalidValue,
            format!(
                "{}: role_until and role_after are written together",
                m.account
            ),
        ));
    }
    if let Some(p) = m
        .overrides_until
        .keys()
        .find(|p| !m.overrides.contains_key(p))
    {
        return Err((
            RejectCode::InvalidValue,
            format!(
                "{}: {} has an expiry and no override",
                m.account,
                p.as_str()
            ),
        ));
    }
    Ok(())
}

/// Member entries a change writes: before (`None`: made by the change), after, keys.
type MemberWrites = BTreeMap<AccountId, (Option<Member>, Member, Vec<String>)>;

/// The ownership transfer among `members`, taken out of it: exactly one entry that gets the
/// owner role and one that loses it. Any other mix stays as separate member effects, which
/// the policy refuses on their own (nobody grants the owner role, the owner does not step
/// down).
fn ownership_transfer(members: &mut MemberWrites) -> Option<crate::policy::Transfer> {
    let was_owner = |b: &Option<Member>| b.as_ref().is_some_and(|b| b.role == Role::Owner);
    let grants: Vec<&AccountId> = members
        .iter()
        .filter(|(_, (b, a, _))| a.role == Role::Owner && !was_owner(b))
        .map(|(k, _)| k)
        .collect();
    let losses: Vec<&AccountId> = members
        .iter()
        .filter(|(_, (b, a, _))| was_owner(b) && a.role != Role::Owner)
        .map(|(k, _)| k)
        .collect();
    let ([to], [from]) = (grants.as_slice(), losses.as_slice()) else {
        return None;
    };
    let (to, from) = ((*to).clone(), (*from).clone());
    let entry = |members: &mut MemberWrites, account: AccountId| {
        members.remove(&account).map(|(before, mut after, fields)| {
            after.account = account;
            crate::policy::EntryWrite {
                before,
                after,
                fields,
            }
        })
    };
    Some(crate::policy::Transfer {
        from: entry(members, from)?,
        to: entry(members, to)?,
    })
}

fn pin_by(ops: &[PathOp], pin_path: &[String]) -> Result<AccountId, Failure> {
    let by = ops
        .iter()
        .find_map(|o| match (&o.action, o.path.split_last()) {
            (Action::Put(ScalarValue::Str(s)), Some((last, parent)))
                if parent == pin_path && last == BY =>
            {
                Some(s.to_string())
            }
            _ => None,
        });
    let has_at = ops
        .iter()
        .any(|o| o.path.len() == 3 && o.path[..2] == *pin_path && o.path[2] == AT);
    match (by, has_at) {
        (Some(by), true) => AccountId::new(by).map_err(model),
        _ => Err(model(ModelError::Missing {
            field: "pin by and at",
        })),
    }
}

fn info_value(path: &[&str], v: &ScalarValue, urls: UrlRule) -> Result<(), Failure> {
    let s = text(v);
    match path.first().copied().unwrap_or_default() {
        TITLE => check_chars("title", s, TITLE_MAX_CHARS),
        DESCRIPTION => check_chars("description", s, DESCRIPTION_MAX_CHARS),
        AVATAR => validate_url_with("avatar", s, urls),
        THEME_BACKGROUND => validate_url_with("theme_background", s, urls),
        CLIENT_NAME => check_chars("client_name", s, support::NAME_MAX_CHARS),
        OWNER_NAME => check_chars("owner_name", s, support::NAME_MAX_CHARS),
        _ => check_chars("theme_color", s, 32),
    }
    .map_err(model)
}

fn setting_value(s: &mut Settings, key: &str, v: &ScalarValue) -> Result<(), Failure> {
    match key {
        SEND_POLICY => s.send_policy = SendPolicy::parse(text(v)).map_err(model)?,
        JOIN_POLICY => s.join_policy = JoinPolicy::parse(text(v)).map_err(model)?,
        INFO_EDIT_POLICY => s.info_edit_policy = EditPolicy::parse(text(v)).map_err(model)?,
        SUBROOM_POLICY => s.subroom_policy = EditPolicy::parse(text(v)).map_err(model)?,
        JOIN_APPROVAL_REQUIRED => s.join_approval_required = boolean(v),
        ALLOW_REACTIONS => s.allow_reactions = boolean(v),
        ALLOW_STICKERS => s.allow_stickers = boolean(v),
        ALLOW_ATTACHMENTS => s.allow_attachments = boolean(v),
        LOCKED => s.locked = boolean(v),
        ADD_MEMBERS_POLICY => s.add_members_policy = EditPolicy::parse(text(v)).map_err(model)?,
        SCOPE => s.scope = crate::model::joining::Scope::parse(text(v)).map_err(model)?,
        MAX_SUBROOM_DEPTH => s.max_subroom_depth = uint("max_subroom_depth", v, SUBROOM_DEPTH_MAX)?,
        SLOW_MODE_SECONDS => {
            s.slow_mode_seconds = uint("slow_mode_seconds", v, SLOW_MODE_MAX_SECONDS)?
        }
        RETENTION_DAYS => s.retention_days = Some(uint("retention_days", v, RETENTION_MAX_DAYS)?),
        _ => return Err((RejectCode::UnknownKey, format!("settings/{key}"))),
    }
    Ok(())
}

fn member_field(m: &mut Member, field: &str, op: &PathOp) -> Result<(), Failure> {
    if let Ok(permission) = Permission::parse(field) {
        match &op.action {
            Action::Put(ScalarValue::Boolean(b)) => {
                m.overrides.insert(permission, *b);
            }
            Action::Delete => {
                m.overrides.remove(&permission);
            }
            _ => return Err((RejectCode::WrongType, format!("{field} is a boolean"))),
        }
        return Ok(());
    }
    if let Some(permission) = schema::override_until_of(field) {
        match &op.action {
            Action::Put(ScalarValue::Int(at)) => {
                m.overrides_until.insert(permission, *at);
            }
            Action::Delete => {
                m.overrides_until.remove(&permission);
            }
            _ => return Err((RejectCode::WrongType, format!("{field} is an integer"))),
        }
        return Ok(());
    }
    // A temporary role's two keys are deleted when it is made permanent or ends early.
    if op.action == Action::Delete && matches!(field, ROLE_UNTIL | ROLE_AFTER) {
        if field == ROLE_UNTIL {
            m.role_until = None;
        } else {
            m.role_after = None;
        }
        return Ok(());
    }
    let Some(v) = typed(schema::MEMBER_FIELDS, op)? else {
        return Err(immutable(&op.path));
    };
    match field {
        ROLE => m.role = Role::parse(text(v)).map_err(model)?,
        ROLE_UNTIL => m.role_until = Some(int(v)),
        ROLE_AFTER => m.role_after = Some(Role::parse(text(v)).map_err(model)?),
        STATUS => m.status = MemberStatus::parse(text(v)).map_err(model)?,
        JOINED_AT => m.joined_at = Some(int(v)),
        LEFT_AT => m.left_at = Some(int(v)),
        REMOVED_AT => m.removed_at = Some(int(v)),
        INVITED_BY => m.invited_by = Some(AccountId::new(text(v)).map_err(model)?),
        NICKNAME => {
            check_chars("nickname", text(v), NICKNAME_MAX_CHARS).map_err(model)?;
            m.nickname = Some(text(v).to_owned());
        }
        BLOCKED => m.blocked = boolean(v),
        _ => {
            check_chars("color", text(v), 32).map_err(model)?;
            m.color = Some(text(v).to_owned());
        }
    }
    Ok(())
}

/// The creation change of a group, channel, thread or system conversation.
fn creation(before: &Conversation, ops: &[PathOp], urls: UrlRule) -> Result<Conversation, Failure> {
    let mut after = Conversation::uncreated(before.id.clone());
    let mut meta: BTreeMap<&str, &ScalarValue> = BTreeMap::new();
    let mut info = Vec::new();
    let mut settings = Vec::new();
    let mut members: BTreeMap<AccountId, Member> = BTreeMap::new();
    for op in ops {
        let p: Vec<&str> = op.path.iter().map(String::as_str).collect();
        if op.replaces {
            return Err(immutable(&op.path));
        }
        match p.as_slice() {
            [META, field] => {
                let v = typed(schema::META_FIELDS, op)?.ok_or_else(|| immutable(&op.path))?;
                meta.insert(field, v);
            }
            [INFO, field] => {
                let v = typed(schema::INFO_FIELDS, op)?.ok_or_else(|| immutable(&op.path))?;
                // The parties' names belong to support threads, which are never created here.
                if matches!(*field, CLIENT_NAME | OWNER_NAME) {
                    return Err((
                        RejectCode::Policy(crate::policy::DenyCode::SupportOnly),
                        format!("info/{field} belongs to support threads"),
                    ));
                }
                info_value(&p[1..], v, urls)?;
                info.push((p[1], v));
            }
            [SETTINGS, key] => {
                let v = typed(schema::SETTINGS_FIELDS, op)?.ok_or_else(|| immutable(&op.path))?;
                settings.push((*key, v));
            }
            [MEMBERS, account] if op.action == Action::MakeMap => {
                let account = AccountId::new(*account).map_err(model)?;
                members.insert(account.clone(), Member::new(account, Role::Member));
            }
            [MEMBERS, account, field] if op.in_new_object => {
                let account = AccountId::new(*account).map_err(model)?;
                let m = members.get_mut(&account).ok_or_else(|| unknown(&op.path))?;
                member_field(m, field, op)?;
            }
            _ => {
                return Err((
                    RejectCode::Policy(crate::policy::DenyCode::InvalidCreation),
                    format!("{} is not part of a creation change", op.path.join("/")),
                ))
            }
        }
    }
    let get = |k: &str| meta.get(k).copied();
    let kind = ConvKind::parse(get(KIND).map(text).unwrap_or_default()).map_err(model)?;
    let bucket_ms = get(BUCKET_MS).map(int).unwrap_or(DEFAULT_BUCKET_MS);
    if !(BUCKET_MS_RANGE.0..=BUCKET_MS_RANGE.1).contains(&bucket_ms) {
        return Err(model(ModelError::OutOfRange {
            field: "bucket_ms",
            reason: "1 minute to 366 days".into(),
        }));
    }
    let account_of = |k: &str| {
        get(k)
            .map(|v| AccountId::new(text(v)))
            .transpose()
            .map_err(model)
    };
    let thread = match (get(PARENT), get(PARENT_MESSAGE), get(DEPTH)) {
        (None, None, None) => None,
        (Some(p), Some(m), Some(d)) => Some(ThreadLink {
            parent: ConvId::new(text(p)).map_err(model)?,
            message: MessageId::new(text(m)).map_err(model)?,
            depth: u32::try_from(int(d)).map_err(|_| {
                model(ModelError::OutOfRange {
                    field: "depth",
                    reason: "negative".into(),
                })
            })?,
        }),
        _ => {
            return Err(model(ModelError::Missing {
                field: "parent, parent_message and depth",
            }))
        }
    };
    let resource = match (get(RESOURCE), account_of(CLIENT)?, account_of(OWNER)?) {
        (None, None, None) => None,
        (Some(r), Some(client), Some(owner)) => Some(ResourceLink {
            resource: ResourceId::new(text(r)).map_err(model)?,
            client,
            owner,
        }),
        _ => {
            return Err(model(ModelError::Missing {
                field: "resource, client and owner",
            }))
        }
    };
    after.meta = Some(Meta {
        kind,
        created_by: account_of(CREATED_BY)?,
        created_at: get(CREATED_AT).map(int).unwrap_or(0),
        bucket_ms,
        thread,
        resource,
        encrypted: get(ENCRYPTED).is_some_and(boolean),
    });
    after.settings = Settings::defaults_for(kind);
    for (key, v) in settings {
        setting_value(&mut after.settings, key, v)?;
    }
    for (field, v) in info {
        let s = Some(text(v).to_owned());
        match field {
            TITLE => after.info.title = s,
            DESCRIPTION => after.info.description = s,
            AVATAR => after.info.avatar = s,
            THEME_COLOR => after.info.theme_color = s,
            _ => after.info.theme_background = s,
        }
    }
    for m in members.values() {
        expiries_whole(m)?;
    }
    after.members = members;
    Ok(after)
}

/// In an encrypted conversation with a group, removing or banning a member travels with the
/// commit that removes their devices, so that no message sent after it reaches them. A
/// leave cannot (MLS forbids committing one's own removal): the group then owes that
/// removal, which the next commit makes (docs/E2EE.md, "Membership").
fn removals_carry_commit(before: &Conversation, effects: &[Effect]) -> Result<(), Failure> {
    if before.mls.is_none()
        || effects
            .iter()
            .any(|e| matches!(e, Effect::MlsCommit { .. }))
    {
        return Ok(());
    }
    let removed = effects.iter().find_map(|e| match e {
        Effect::UpdateMember { before, after, .. }
            if before.is_active()
                && matches!(after.status, MemberStatus::Removed | MemberStatus::Banned) =>
        {
            Some(&after.account)
        }
        _ => None,
    });
    match removed {
        Some(account) => Err(deny(
            crate::policy::DenyCode::MlsCommitRequired,
            format!("removing {account} carries the commit that removes their devices"),
        )),
        None => Ok(()),
    }
}

/// The `conv/mls` ops of one change: the group made (`init`), or one commit.
#[derive(Default)]
struct MlsOps {
    init: bool,
    group_info: Option<Vec<u8>>,
    tree: Option<Vec<u8>>,
    commit: Option<(u64, Vec<u8>)>,
    welcome: Option<(u64, Vec<u8>)>,
    epoch: Option<i64>,
    at: bool,
}

fn mls_refusal(refusal: &crate::e2ee::DsRefusal) -> Failure {
    (RejectCode::from(refusal), refusal.to_string())
}

fn deny(code: crate::policy::DenyCode, reason: String) -> Failure {
    (RejectCode::Policy(code), reason)
}

impl MlsOps {
    /// One op under `conv/mls` (`rest`: the path after `mls`).
    fn take(&mut self, before: &Conversation, op: &PathOp, rest: &[&str]) -> Result<(), Failure> {
        use crate::policy::DenyCode;
        if !before.encrypted() {
            return Err(deny(
                DenyCode::NotEncrypted,
                format!("{} is not end-to-end encrypted", before.id),
            ));
        }
        if rest.is_empty() && before.mls.is_some() {
            return Err(deny(
                DenyCode::MlsGroupExists,
                format!("{} has its MLS group", before.id),
            ));
        }
        // A commit on a key that holds one is for an epoch the group has left: `effects`
        // says so (`mls_stale_epoch`).
        if op.replaces && !matches!(rest, [EPOCH | AT] | [COMMITS, _]) {
            return Err(immutable(&op.path));
        }
        let bytes = |op: &PathOp| match &op.action {
            Action::Put(ScalarValue::Bytes(b)) => Ok(b.clone()),
            _ => Err((
                RejectCode::WrongType,
                format!("{} holds bytes", op.path.join("/")),
            )),
        };
        let epoch_key = |key: &str| {
            key.parse::<u64>()
                .ok()
                .filter(|e| e.to_string() == key)
                .ok_or_else(|| unknown(&op.path))
        };
        match rest {
            [] if op.action == Action::MakeMap => self.init = true,
            [GROUP_INFO] if op.in_new_object => self.group_info = Some(bytes(op)?),
            [TREE] if op.in_new_object => self.tree = Some(bytes(op)?),
            [COMMITS | WELCOMES] if op.in_new_object && op.action == Action::MakeMap => {}
            [COMMITS, key] => {
                let epoch = epoch_key(key)?;
                if self.commit.replace((epoch, bytes(op)?)).is_some() {
                    return Err((RejectCode::InvalidValue, "one commit per change".into()));
                }
            }
            [WELCOMES, key] => self.welcome = Some((epoch_key(key)?, bytes(op)?)),
            [EPOCH] => match &op.action {
                Action::Put(ScalarValue::Int(e)) => self.epoch = Some(*e),
                _ => return Err((RejectCode::WrongType, "mls/epoch is an integer".into())),
            },
            [AT] => match &op.action {
                Action::Put(ScalarValue::Int(_)) => self.at = true,
                _ => return Err((RejectCode::WrongType, "mls/at is an integer".into())),
            },
            _ => return Err(unknown(&op.path)),
        }
        Ok(())
    }

    /// What the ops amount to: the group made, one commit, or nothing; anything else is
    /// refused. The commit's content is the Delivery Service's to check (the acceptor's
    /// [`crate::e2ee::GroupView`]); here only its place in the epochs.
    fn effects(self, before: &Conversation) -> Result<Vec<Effect>, Failure> {
        use crate::e2ee::DsRefusal;
        use crate::policy::DenyCode;
        let mut out = Vec::new();
        let mut current = before.mls.map(|m| m.epoch);
        if self.init {
            let (Some(group_info), Some(tree)) = (self.group_info, self.tree) else {
                return Err(model(ModelError::Missing {
                    field: "mls group_info and tree",
                }));
            };
            out.push(Effect::MlsInit { group_info, tree });
            current = Some(0);
        }
        let written_epoch = self.epoch;
        match self.commit {
            Some((epoch, commit)) => {
                let Some(current) = current else {
                    return Err(deny(
                        DenyCode::MlsNoGroup,
                        format!("{} has no MLS group yet", before.id),
                    ));
                };
                if epoch != current {
                    let refusal = if epoch < current {
                        DsRefusal::StaleEpoch {
                            got: epoch,
                            current,
                        }
                    } else {
                        DsRefusal::UnknownEpoch {
                            got: epoch,
                            current,
                        }
                    };
                    return Err(mls_refusal(&refusal));
                }
                // `mls/at` may be left out: a put of the value it holds writes nothing.
                if written_epoch != i64::try_from(epoch + 1).ok() {
                    return Err((
                        RejectCode::InvalidValue,
                        "a commit writes mls/epoch, the next epoch".into(),
                    ));
                }
                let welcome = match self.welcome {
                    Some((e, w)) if e == epoch => Some(w),
                    Some(_) => return Err(unknown(&["mls".into(), WELCOMES.into()])),
                    None => None,
                };
                out.push(Effect::MlsCommit {
                    epoch,
                    commit,
                    welcome,
                });
            }
            None if self.init => {
                if written_epoch != Some(0) || !self.at || self.welcome.is_some() {
                    return Err((
                        RejectCode::InvalidValue,
                        "a new group writes mls/epoch 0 and mls/at, and no Welcome".into(),
                    ));
                }
            }
            None => {
                if written_epoch.is_some() || self.at || self.welcome.is_some() {
                    return Err((
                        RejectCode::InvalidValue,
                        "mls/epoch, mls/at and Welcomes move only with a commit".into(),
                    ));
                }
            }
        }
        Ok(out)
    }
}

// ---------- message buckets ----------

/// Emoji a change puts and removes for one (message, account).
type Reacted<'a> = (Vec<&'a str>, Vec<&'a str>);

fn msgs_effects(doc: &AcceptedDoc, env: &Env<'_>, ops: &[PathOp]) -> Result<Vec<Effect>, Failure> {
    let mut new: BTreeMap<String, BTreeMap<String, ScalarValue>> = BTreeMap::new();
    let mut updates: BTreeMap<String, BTreeMap<String, ScalarValue>> = BTreeMap::new();
    // Fields of existing messages this change removes (deletes only).
    let mut removed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out = Vec::new();
    // (message, account) -> emoji put and removed by this change (the per-member cap).
    let mut reacted: BTreeMap<(&str, &str), Reacted<'_>> = BTreeMap::new();
    for op in ops {
        let p: Vec<&str> = op.path.iter().map(String::as_str).collect();
        match p.as_slice() {
            [MESSAGES, shard, id] => {
                if op.action != Action::MakeMap || op.replaces {
                    return Err(immutable(&op.path));
                }
                MessageId::new(*id).map_err(model)?;
                in_its_shard(shard, id, &op.path)?;
                new.insert((*id).to_owned(), BTreeMap::new());
            }
            [MESSAGES, shard, id, field] => {
                in_its_shard(shard, id, &op.path)?;
                let Some(v) = typed(schema::MESSAGE_FIELDS, op)?.cloned() else {
                    // Removing a field is part of a delete only (`redaction`).
                    if op.in_new_object {
                        return Err(immutable(&op.path));
                    }
                    removed
                        .entry((*id).to_owned())
                        .or_default()
                        .insert((*field).to_owned());
                    continue;
                };
                let target = if op.in_new_object {
                    new.get_mut(*id)
                } else {
                    Some(updates.entry((*id).to_owned()).or_default())
                };
                target
                    .ok_or_else(|| unknown(&op.path))?
                    .insert((*field).to_owned(), v);
            }
            [REACTIONS, key] => {
                let (message, account, emoji) = split_reaction_key(key).ok_or_else(|| {
                    (
                        RejectCode::InvalidValue,
                        format!("reaction key {key:?} is not <message>|<account>|<emoji>"),
                    )
                })?;
                let (message_key, account_key) = (message, account);
                let account = AccountId::new(account).map_err(model)?;
                validate_reaction(emoji).map_err(model)?;
                let entry = reacted.entry((message_key, account_key)).or_default();
                match op.action {
                    Action::Put(ScalarValue::Int(_)) => entry.0.push(emoji),
                    Action::Delete => entry.1.push(emoji),
                    _ => {
                        return Err((
                            RejectCode::WrongType,
                            "a reaction holds its time (integer)".into(),
                        ))
                    }
                }
                let message = existing_message(doc, message)?;
                out.push(Effect::SetReaction {
                    message: Box::new(message),
                    account,
                });
            }
            _ => return Err(unknown(&op.path)),
        }
    }
    for ((message, account), (put, removed)) in reacted {
        if put.is_empty() {
            continue;
        }
        let before = read::reactions_of(doc.doc(), message, account);
        let mut after = before.clone();
        after.retain(|e| !removed.contains(&e.as_str()));
        after.extend(put.iter().map(|e| (*e).to_owned()));
        // Only growth past the cap is refused: whoever is over it may still remove.
        if after.len() > REACTIONS_PER_MEMBER_MAX && after.len() > before.len() {
            return Err((
                RejectCode::Policy(crate::policy::DenyCode::TooManyReactions),
                format!(
                    "{account} would keep {} reactions on {message}; at most {REACTIONS_PER_MEMBER_MAX}",
                    after.len()
                ),
            ));
        }
    }
    for (id, fields) in new {
        let message = new_message(&id, fields, env.urls)?;
        let answer = answer_effect(&message, env.answered)?;
        out.push(Effect::PostMessage(Box::new(message)));
        out.extend(answer);
    }
    for id in removed.keys() {
        updates.entry(id.clone()).or_default();
    }
    for (id, fields) in updates {
        let message = existing_message(doc, &id)?;
        let gone = removed.remove(&id).unwrap_or_default();
        if !gone.is_empty() || fields.contains_key(DELETED_AT) || fields.contains_key(DELETED_BY) {
            redaction(doc, env, &message, &fields, &gone)?;
            out.push(Effect::DeleteMessage(Box::new(message)));
            continue;
        }
        let keys: Vec<&str> = fields.keys().map(String::as_str).collect();
        let effect = match keys.as_slice() {
            // Automerge writes no op for a value a field holds already: an edit within the
            // millisecond of the last one writes its content alone.
            [BODY, EDITED_AT] | [BODY] if keys.len() == 2 || message.edited_at.is_some() => {
                check_chars(
                    "body",
                    fields.get(BODY).map(text).unwrap_or_default(),
                    BODY_MAX_CHARS,
                )
                .map_err(model)?;
                Effect::EditBody(Box::new(message))
            }
            // A sealed edit: its new content, checked against the group with the message it
            // replaces (`accept::mls::check_sealed`).
            [EDITED_AT, SEALED] | [SEALED] if keys.len() == 2 || message.edited_at.is_some() => {
                match fields.get(SEALED) {
                    Some(ScalarValue::Bytes(sealed)) => Effect::EditSealed {
                        message: Box::new(message),
                        sealed: sealed.clone(),
                    },
                    _ => return Err((RejectCode::WrongType, "sealed holds bytes".into())),
                }
            }
            [STATUS] => {
                let to = ProposalStatus::parse(fields.get(STATUS).map(text).unwrap_or_default())
                    .map_err(model)?;
                Effect::SetProposalStatus {
                    proposal: Box::new(message),
                    to,
                }
            }
            _ => {
                return Err((
                    RejectCode::Policy(crate::policy::DenyCode::ImmutableField),
                    format!("message {id}: {} cannot change together", keys.join(", ")),
                ))
            }
        };
        out.push(effect);
    }
    Ok(out)
}

/// A delete is the whole tombstone in one change (docs/SCHEMA.md, "Tombstones"): it sets
/// `deleted_at` and `deleted_by` (the change's own account), removes every other field the
/// message holds, and writes nothing else.
fn redaction(
    doc: &AcceptedDoc,
    env: &Env<'_>,
    message: &crate::model::message::Message,
    set: &BTreeMap<String, ScalarValue>,
    gone: &BTreeSet<String>,
) -> Result<(), Failure> {
    let incomplete = |what: String| {
        Err((
            RejectCode::Policy(crate::policy::DenyCode::IncompleteRedaction),
            format!("deleting message {}: {what}", message.id),
        ))
    };
    if let Some(by) = set.get(DELETED_BY).map(text) {
        if by != env.author.account.as_str() {
            return Err((
                RejectCode::Policy(crate::policy::DenyCode::ForgedTombstone),
                format!(
                    "{} writes a tombstone of message {} deleted by {by:?}",
                    env.author.account, message.id
                ),
            ));
        }
    }
    let written: Vec<&str> = set.keys().map(String::as_str).collect();
    if written != [DELETED_AT, DELETED_BY] {
        return incomplete(format!(
            "writes {}; a delete writes deleted_at and deleted_by, nothing else",
            written.join(", ")
        ));
    }
    let held = read::message_keys(doc.doc(), &message.id).unwrap_or_default();
    let content: BTreeSet<String> = held
        .into_iter()
        .filter(|k| !schema::TOMBSTONE_FIELDS.contains(&k.as_str()))
        .collect();
    if *gone != content {
        let kept: Vec<&str> = content.difference(gone).map(String::as_str).collect();
        let other: Vec<&str> = gone.difference(&content).map(String::as_str).collect();
        return incomplete(format!(
            "keeps {} and removes {}",
            kept.join(", "),
            other.join(", ")
        ));
    }
    Ok(())
}

/// A message lives in the shard its id hashes to, nowhere else.
fn in_its_shard(shard: &str, id: &str, path: &[String]) -> Result<(), Failure> {
    if schema::message_shard(id) == shard {
        Ok(())
    } else {
        Err((
            RejectCode::InvalidValue,
            format!("{} is not the shard of message {id}", path.join("/")),
        ))
    }
}

fn existing_message(
    doc: &AcceptedDoc,
    id: &str,
) -> Result<crate::model::message::Message, Failure> {
    let id = MessageId::new(id).map_err(model)?;
    read::read_message_fields(doc.doc(), &id).ok_or_else(|| {
        (
            RejectCode::Policy(crate::policy::DenyCode::MessageMissing),
            format!("no message {id} in this bucket"),
        )
    })
}

fn new_message(
    id: &str,
    mut f: BTreeMap<String, ScalarValue>,
    urls: UrlRule,
) -> Result<NewMessage, Failure> {
    let mut take_str = |k: &str| f.remove(k).map(|v| text(&v).to_owned());
    let author = AccountId::new(
        take_str(AUTHOR).ok_or_else(|| model(ModelError::Missing { field: "author" }))?,
    )
    .map_err(model)?;
    let kind = MessageKind::parse(
        &take_str(KIND).ok_or_else(|| model(ModelError::Missing { field: "kind" }))?,
    )
    .map_err(model)?;
    let body = take_str(BODY).ok_or_else(|| model(ModelError::Missing { field: "body" }))?;
    let payload = take_str(PAYLOAD);
    let caption = take_str(CAPTION);
    let attachments = take_str(ATTACHMENTS);
    let mentions = take_str(MENTIONS);
    let reply_to = take_str(REPLY_TO)
        .map(MessageId::new)
        .transpose()
        .map_err(model)?;
    let forwarded_from = take_str(FORWARDED_FROM)
        .map(|s| ForwardedFrom::decode(&s))
        .transpose()
        .map_err(model)?;
    let status = take_str(STATUS);
    let stamp = Stamp {
        sender_role: take_str(SENDER_ROLE)
            .map(|s| SenderRole::parse(&s))
            .transpose()
            .map_err(model)?,
        sender_name: take_str(SENDER_NAME),
        related_lead: take_str(RELATED_LEAD)
            .map(LeadId::new)
            .transpose()
            .map_err(model)?,
    };
    let created_at = f.remove(CREATED_AT).map(|v| int(&v)).ok_or_else(|| {
        model(ModelError::Missing {
            field: "created_at",
        })
    })?;
    let scheduled_at = f.remove(SCHEDULED_AT).map(|v| int(&v));
    let sealed = match f.remove(SEALED) {
        Some(ScalarValue::Bytes(b)) => Some(b),
        _ => None,
    };
    let blobs = f.remove(BLOBS).map(|v| text(&v).to_owned());
    if let Some(extra) = f.keys().next() {
        // edited_at / deleted_at on a new message
        return Err((
            RejectCode::InvalidValue,
            format!("a new message has no {extra}"),
        ));
    }
    match (kind, status.as_deref()) {
        (MessageKind::Proposal, Some("pending")) | (_, None)
            if kind != MessageKind::Proposal || status.is_some() => {}
        _ => {
            return Err((
                RejectCode::InvalidValue,
                "a proposal starts pending; other messages have no status".into(),
            ))
        }
    }
    let message = NewMessage {
        id: MessageId::new(id).map_err(model)?,
        author,
        kind,
        body,
        payload,
        caption,
        attachments,
        mentions,
        reply_to,
        forwarded_from,
        created_at,
        scheduled_at,
        stamp,
        sealed,
        blobs,
    };
    message.validate_with(urls).map_err(model)?;
    Ok(message)
}

// ---------- profile and private documents ----------

fn profile_field(op: &PathOp, urls: UrlRule) -> Result<(), Failure> {
    if op.path.len() != 1 {
        return Err(unknown(&op.path));
    }
    let field = op.path[0].as_str();
    let Some(v) = typed(schema::PROFILE_FIELDS, op)? else {
        return if matches!(field, AVATAR | BIO | STATUS) {
            Ok(())
        } else {
            Err(immutable(&op.path))
        };
    };
    match field {
        KIND => AccountKind::parse(text(v)).map(|_| ()),
        DISPLAY_NAME => validate_display_name(text(v)),
        AVATAR => validate_url_with("avatar", text(v), urls),
        BIO => validate_bio(text(v)),
        _ => validate_status(text(v)),
    }
    .map_err(model)
}

/// At most `SCHEDULE_MAX_PENDING` entries under `scheduled` once a change that adds one is
/// applied. Devices check it when scheduling; this holds it for a client that does not (and
/// for two offline devices of one account), so the scheduler never has more than that many
/// messages of one account to post.
fn pending_schedules(doc: &AcceptedDoc, ops: &[PathOp]) -> Result<(), Failure> {
    let existing = read::get_map(doc.doc(), &automerge::ROOT, SCHEDULED);
    let present = |id: &str| {
        existing
            .as_ref()
            .is_some_and(|map| read::get_map(doc.doc(), map, id).is_some())
    };
    let (mut added, mut removed) = (BTreeSet::new(), BTreeSet::new());
    for op in ops {
        match (op.path.as_slice(), &op.action) {
            ([top, id], Action::MakeMap) if top == SCHEDULED && !present(id) => {
                added.insert(id.as_str());
            }
            ([top, id], Action::Delete) if top == SCHEDULED && present(id) => {
                removed.insert(id.as_str());
            }
            _ => {}
        }
    }
    if added.is_empty() {
        return Ok(());
    }
    let before = existing.map_or(0, |map| automerge::ReadDoc::length(doc.doc(), &map));
    let after = (before + added.len()).saturating_sub(removed.len());
    if after > SCHEDULE_MAX_PENDING {
        return Err((
            RejectCode::Policy(crate::policy::DenyCode::ScheduleTooMany),
            format!("{after} scheduled messages would be pending, at most {SCHEDULE_MAX_PENDING}"),
        ));
    }
    Ok(())
}

/// The conversations a private document's change stores text in the clear for: a draft put,
/// a scheduled message's conversation put, or its body put (its conversation read from the
/// entry, or from this change when it makes the entry).
fn private_text(doc: &AcceptedDoc, ops: &[PathOp]) -> Vec<ConvId> {
    let conv_of_entry = |id: &str| -> Option<ConvId> {
        let written = ops
            .iter()
            .find_map(|op| match (op.path.as_slice(), &op.action) {
                ([top, entry, field], Action::Put(ScalarValue::Str(s)))
                    if top == SCHEDULED && entry == id && field == CONV =>
                {
                    ConvId::new(s.as_str()).ok()
                }
                _ => None,
            });
        written.or_else(|| {
            let scheduled = read::get_map(doc.doc(), &automerge::ROOT, SCHEDULED)?;
            let entry = read::get_map(doc.doc(), &scheduled, id)?;
            ConvId::new(read::get_str(doc.doc(), &entry, CONV)?).ok()
        })
    };
    let mut convs = BTreeSet::new();
    for op in ops {
        let conv = match (op.path.as_slice(), &op.action) {
            ([top, conv], Action::Put(ScalarValue::Str(_))) if top == DRAFTS => {
                ConvId::new(conv.as_str()).ok()
            }
            ([top, id, field], Action::Put(_)) if top == SCHEDULED && field == CONV => {
                conv_of_entry(id)
            }
            ([top, id, field], Action::Put(_)) if top == SCHEDULED && field == BODY => {
                conv_of_entry(id)
            }
            _ => None,
        };
        convs.extend(conv);
    }
    convs.into_iter().collect()
}

fn private_op(op: &PathOp) -> Result<(), Failure> {
    let p: Vec<&str> = op.path.iter().map(String::as_str).collect();
    match (p.as_slice(), &op.action) {
        ([CONTACTS, id], Action::MakeMap | Action::Delete) => {
            ContactId::new(*id).map(|_| ()).map_err(model)
        }
        ([CONVS, id], Action::MakeMap) => ConvId::new(*id).map(|_| ()).map_err(model),
        ([SCHEDULED, id], Action::MakeMap | Action::Delete) => {
            MessageId::new(*id).map(|_| ()).map_err(model)
        }
        ([DRAFTS, id], Action::Put(ScalarValue::Str(s))) => {
            ConvId::new(*id).map_err(model)?;
            check_chars("draft", s, DRAFT_MAX_CHARS).map_err(model)
        }
        ([DRAFTS, _], Action::Delete) => Ok(()),
        ([CONTACTS, _, field], _) => {
            let Some(v) = typed(schema::CONTACT_FIELDS, op)? else {
                return Ok(());
            };
            match *field {
                KIND => ContactKind::parse(text(v)).map(|_| ()),
                PHONE => validate_e164(text(v)),
                EMAIL => validate_email(text(v)),
                ACCOUNT => AccountId::new(text(v)).map(|_| ()),
                _ => check_chars("nickname", text(v), CONTACT_NICKNAME_MAX_CHARS),
            }
            .map_err(model)
        }
        ([CONVS, id, field], _) => {
            // Hiding takes a direct conversation off one's list; a group is left instead.
            if *field == HIDDEN_AT && !ConvId::new(*id).map_err(model)?.is_direct() {
                return Err((
                    RejectCode::Policy(crate::policy::DenyCode::DirectOnly),
                    format!("{id} is not a direct conversation: only those are hidden"),
                ));
            }
            if let Some(v) = typed(schema::CONV_PREF_FIELDS, op)? {
                if *field == NOTIFICATIONS {
                    NotificationLevel::parse(text(v)).map_err(model)?;
                }
            }
            Ok(())
        }
        ([SCHEDULED, _, field], _) => {
            if let Some(v) = typed(schema::SCHEDULED_FIELDS, op)? {
                match *field {
                    CONV => ConvId::new(text(v)).map(|_| ()).map_err(model)?,
                    BODY => check_chars("body", text(v), BODY_MAX_CHARS).map_err(model)?,
                    REFUSED => check_chars("refused", text(v), 64).map_err(model)?,
                    _ => {}
                }
            }
            Ok(())
        }
        _ => Err(unknown(&op.path)),
    }
}

/// A response to a proposal moves the proposal's status (the answer it gives), decided
/// with the response: the policy checks that move as the response's own effect, and the
/// acceptor's host writes it into the proposal's bucket right after (`accept::follow`).
fn answer_effect(
    message: &NewMessage,
    answered: Option<&Message>,
) -> Result<Option<Effect>, Failure> {
    let Some(proposal) = answered.filter(|p| {
        message.kind == MessageKind::ProposalResponse && message.reply_to.as_ref() == Some(&p.id)
    }) else {
        return Ok(None);
    };
    let payload = message.payload.as_deref().unwrap_or_default();
    let response =
        crate::model::proposal::ProposalResponsePayload::from_json(payload).map_err(model)?;
    Ok(Some(Effect::SetProposalStatus {
        proposal: Box::new(proposal.clone()),
        to: response.response.status(),
    }))
}
