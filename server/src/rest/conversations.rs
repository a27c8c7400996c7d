//! Conversations: direct and support find-or-create, create group/channel/thread/system,
//! read one, list the caller's, add and remove members.

use confab_core::protocol::ErrorCode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use confab_core::automerge::ScalarValue;
use confab_core::client::apply::{direct_id, support_id};
use confab_core::doc::read::ConvPrefs;
use confab_core::doc::schema::keys;
use confab_core::doc::write::{self, CreateConv};
use confab_core::ids::{AccountId, ConvId, DocId, MessageId, ResourceId, TenantId};
use confab_core::model::conversation::{
    ConvKind, Conversation, EditPolicy, Info, JoinPolicy, Member, MemberStatus, ResourceLink, Role,
    SendPolicy, Settings, ThreadLink, DEFAULT_BUCKET_MS,
};
use confab_core::policy::{join_role, DenyCode, Standing};
use futures_util::StreamExt;
use serde::Deserialize;

use super::budget::Writer;
use super::error::{acked, ApiError};
use super::extract::{Caller, JsonBody, Params};
use super::views::{ConversationList, ConversationListEntry, ConversationView};
use crate::clock::now_ms;
use crate::engine::ReadRefusal;
use crate::state::AppState;
use crate::store::ConvListItem;

/// A fresh id: `<prefix><ms>-<counter>-<salt>` in hex, unique per process and, thanks to the
/// per-process salt, across the processes of a cluster.
pub(super) fn fresh_id(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static SALT: OnceLock<u64> = OnceLock::new();
    let salt = *SALT.get_or_init(|| {
        use std::hash::BuildHasher;
        std::collections::hash_map::RandomState::new().hash_one((std::process::id(), now_ms()))
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "{prefix}{:x}-{n:x}-{:06x}",
        now_ms().max(0),
        salt & 0xff_ffff
    )
}

/// A conversation id from a path: one that cannot be an id cannot exist.
pub(super) fn path_conv(id: &str) -> Result<ConvId, ApiError> {
    ConvId::new(id).map_err(|_| ApiError::not_found(format!("no conversation {id:?}")))
}

/// The accepted conversation `id` of the caller's tenant, or 404. The projection answers
/// first, so unknown ids do not load anything into the engine.
pub(super) async fn load(
    app: &AppState,
    caller: &Caller,
    id: &ConvId,
) -> Result<Conversation, ApiError> {
    let missing = || ApiError::not_found(format!("no conversation {id}"));
    if app
        .engine
        .store()
        .conversation(&caller.tenant, id)
        .await?
        .is_none()
    {
        return Err(missing());
    }
    app.engine
        .conversation(&caller.tenant, id)
        .await
        .filter(|c| c.meta.is_some())
        .ok_or_else(missing)
}

/// Read access (`Engine::may_read`): an active member, of a thread's parent too, or a
/// service account.
pub(super) async fn readable(
    app: &AppState,
    conv: &Conversation,
    caller: &Caller,
) -> Result<(), ApiError> {
    let doc = DocId::conv(&caller.tenant, &conv.id);
    match app
        .engine
        .may_read(Some(conv), &doc, &caller.author())
        .await
    {
        Ok(()) => Ok(()),
        Err(ReadRefusal::Denied(denied)) => Err(match denied.code() {
            Some(code) => ApiError::forbidden(code, denied.to_string()),
            None => ApiError::not_found(format!("no conversation {}", conv.id)),
        }),
        Err(ReadRefusal::Unavailable(e)) => Err(ApiError::unavailable(e)),
    }
}

/// Where `account` stands in the parent of `conv` when it is a thread (what the policy
/// asks of a write there).
pub(super) async fn parent_standing(
    app: &AppState,
    tenant: &TenantId,
    conv: &Conversation,
    account: &AccountId,
) -> Result<Option<Standing>, ApiError> {
    app.engine
        .thread_standing(tenant, conv, account)
        .await
        .map_err(ApiError::unavailable)
}

/// The conversation's body, with its members' read times.
async fn body(
    app: &AppState,
    status: StatusCode,
    conv: &Conversation,
    tenant: &TenantId,
) -> Result<Response, ApiError> {
    let view = ConversationView::of(conv, tenant, now_ms())
        .ok_or_else(|| ApiError::internal(format!("{} has no creation change", conv.id)))?;
    let times = app.engine.store().read_times(tenant, &conv.id).await?;
    Ok((status, Json(view.with_read_times(&times))).into_response())
}

/// The conversation after a write the engine acknowledged.
pub(super) async fn respond_with(
    app: &AppState,
    caller: &Caller,
    id: &ConvId,
    status: StatusCode,
) -> Result<Response, ApiError> {
    match app.engine.conversation(&caller.tenant, id).await {
        Some(conv) => body(app, status, &conv, &caller.tenant).await,
        None => Err(ApiError::unavailable(format!(
            "{id} was written but could not be read back"
        ))),
    }
}

fn not_applicable_conflict(reason: String) -> ApiError {
    ApiError::conflict("already_exists", reason)
}

// ---------- direct ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectRequest {
    /// The other account (also accepted as `peer_user_id`).
    #[serde(alias = "peer_user_id")]
    peer: AccountId,
    /// The pair's end-to-end encrypted direct conversation (docs/E2EE.md, "Direct
    /// conversations and support threads"): only its creation; the group is a member's
    /// device's to make.
    #[serde(default)]
    encrypted: bool,
}

/// `POST /v1/conversations/direct`: 200 with the existing conversation, 201 when created.
pub async fn direct(
    State(app): State<AppState>,
    caller: Writer,
    JsonBody(req): JsonBody<DirectRequest>,
) -> Result<Response, ApiError> {
    if req.peer == caller.account {
        return Err(ApiError::invalid(
            "invalid_value",
            "peer",
            "a direct conversation needs two different accounts",
        ));
    }
    let id = direct_id(&caller.tenant, &caller.account, &req.peer, req.encrypted);
    if let Some(conv) = app.engine.conversation(&caller.tenant, &id).await {
        return body(&app, StatusCode::OK, &conv, &caller.tenant).await;
    }
    let created = if req.encrypted {
        write::encrypted_direct_creation_change(&caller.tenant, &caller.account, &req.peer)
    } else {
        write::direct_creation_change(&caller.tenant, &caller.account, &req.peer)
    };
    let (doc, change) = created.map_err(|e| ApiError::internal(e.to_string()))?;
    submit_creation(&app, &caller, doc, change.raw_bytes().to_vec()).await?;
    respond_with(&app, &caller, &id, StatusCode::CREATED).await
}

/// Submits a deterministic creation change. Two requests racing both get an ack for the one
/// change: there is still one conversation.
async fn submit_creation(
    app: &AppState,
    caller: &Writer,
    doc: DocId,
    bytes: Vec<u8>,
) -> Result<u64, ApiError> {
    let outcome = app
        .engine
        .submit(doc, caller.author(), vec![bytes])
        .await
        .into_iter()
        .next()
        .unwrap_or(crate::engine::SubmitOutcome::Failed {
            code: ErrorCode::Internal,
            retry_after_ms: None,
            hash: None,
            message: "no answer".into(),
        });
    acked(caller.charged(app, outcome), not_applicable_conflict)
}

// ---------- support ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupportRequest {
    client: AccountId,
    resource: ResourceId,
    owner: AccountId,
    /// The resource's title, the client's and the owner's names: written where the thread has
    /// none yet, by the client or the owner (`policy::support`).
    #[serde(default)]
    resource_title: Option<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    owner_name: Option<String>,
    /// The client's end-to-end encrypted thread about the resource (docs/E2EE.md, "Direct
    /// conversations and support threads"): only its creation; the group is a member's
    /// device's to make.
    #[serde(default)]
    encrypted: bool,
}

impl SupportRequest {
    /// The names' lengths, checked for every caller: a service account's names are not
    /// applied, but a request that breaks the schema is refused all the same.
    fn check(&self) -> Result<(), ApiError> {
        use confab_core::limits::TITLE_MAX_CHARS;
        use confab_core::model::support::NAME_MAX_CHARS;
        for (field, value, max) in [
            ("resource_title", &self.resource_title, TITLE_MAX_CHARS),
            ("client_name", &self.client_name, NAME_MAX_CHARS),
            ("owner_name", &self.owner_name, NAME_MAX_CHARS),
        ] {
            if let Some(value) = value {
                confab_core::error::check_chars(field, value, max)
                    .map_err(|e| ApiError::invalid("too_long", field, e.to_string()))?;
            }
        }
        Ok(())
    }

    fn names(&self) -> Vec<(&'static str, String)> {
        [
            (keys::TITLE, &self.resource_title),
            (keys::CLIENT_NAME, &self.client_name),
            (keys::OWNER_NAME, &self.owner_name),
        ]
        .into_iter()
        .filter_map(|(field, value)| value.clone().map(|v| (field, v)))
        .collect()
    }
}

/// Writes the names the thread does not hold yet as the caller (a party of the thread; a
/// service account is not a member, so its names are not applied). `false`: nothing to do.
async fn apply_support_names(
    app: &AppState,
    caller: &Writer,
    id: &ConvId,
    names: Vec<(&'static str, String)>,
) -> Result<bool, ApiError> {
    let Some(conv) = app.engine.conversation(&caller.tenant, id).await else {
        return Ok(false);
    };
    let unset: Vec<(&'static str, String)> = names
        .into_iter()
        .filter(|(field, _)| match *field {
            keys::TITLE => conv.info.title.is_none(),
            keys::CLIENT_NAME => conv.info.client_name.is_none(),
            _ => conv.info.owner_name.is_none(),
        })
        .collect();
    if unset.is_empty() || caller.service {
        return Ok(false);
    }
    let now = now_ms();
    let outcome = caller
        .write(
            app,
            DocId::conv(&caller.tenant, id),
            Box::new(move |doc, tag| {
                let pairs: Vec<(&'static str, &str)> =
                    unset.iter().map(|(f, v)| (*f, v.as_str())).collect();
                write::name_unset(doc, tag, now, &pairs)
            }),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    Ok(true)
}

/// `POST /v1/conversations/support`: the client's thread about a resource. Found
/// by (client, resource), the encrypted one apart; `owner` is used only when it is created.
pub async fn support(
    State(app): State<AppState>,
    caller: Writer,
    JsonBody(req): JsonBody<SupportRequest>,
) -> Result<Response, ApiError> {
    req.check()?;
    if !(caller.service || caller.account == req.client || caller.account == req.owner) {
        return Err(ApiError::forbidden(
            DenyCode::NotMember,
            "a support thread is opened by its client, its owner or a service account",
        ));
    }
    let id = support_id(&caller.tenant, &req.client, &req.resource, req.encrypted);
    if let Some(conv) = app.engine.conversation(&caller.tenant, &id).await {
        // The owner named in the request may not be the thread's: only its parties see it.
        if !caller.service && conv.member(&caller.account).is_none() {
            return Err(ApiError::forbidden(
                DenyCode::NotMember,
                format!("{} is not a member of {id}", caller.account),
            ));
        }
        if apply_support_names(&app, &caller, &id, req.names()).await? {
            return respond_with(&app, &caller, &id, StatusCode::OK).await;
        }
        return body(&app, StatusCode::OK, &conv, &caller.tenant).await;
    }
    let names = req.names();
    let link = ResourceLink {
        resource: req.resource,
        client: req.client,
        owner: req.owner,
    };
    let created = if req.encrypted {
        write::encrypted_support_creation_change(&caller.tenant, &link)
    } else {
        write::support_creation_change(&caller.tenant, &link)
    };
    let (doc, change) = created.map_err(|e| ApiError::internal(e.to_string()))?;
    submit_creation(&app, &caller, doc, change.raw_bytes().to_vec()).await?;
    apply_support_names(&app, &caller, &id, names).await?;
    respond_with(&app, &caller, &id, StatusCode::CREATED).await
}

// ---------- create ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberSpec {
    account: AccountId,
    role: Option<Role>,
}

/// Settings to change: from the kind's defaults at creation, or on an existing conversation
/// (`PATCH …/settings`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    send_policy: Option<SendPolicy>,
    join_policy: Option<JoinPolicy>,
    info_edit_policy: Option<EditPolicy>,
    subroom_policy: Option<EditPolicy>,
    max_subroom_depth: Option<u32>,
    message_retention_days: Option<u32>,
    allow_reactions: Option<bool>,
    allow_stickers: Option<bool>,
    allow_attachments: Option<bool>,
    slow_mode_seconds: Option<u32>,
    join_approval_required: Option<bool>,
    /// Locked: nothing new is posted until an admin unlocks it (docs/POLICY.md, "Rules").
    locked: Option<bool>,
    /// Who may add members and answer join requests (docs/POLICY.md, "Joining").
    add_members_policy: Option<EditPolicy>,
    /// Who finds the conversation through discovery.
    scope: Option<confab_core::model::joining::Scope>,
}

impl SettingsPatch {
    fn apply(self, s: &mut Settings) {
        macro_rules! set {
            ($($patch:ident => $field:ident),+) => {
                $(if let Some(v) = self.$patch { s.$field = v; })+
            };
        }
        set!(
            send_policy => send_policy,
            join_policy => join_policy,
            info_edit_policy => info_edit_policy,
            subroom_policy => subroom_policy,
            max_subroom_depth => max_subroom_depth,
            allow_reactions => allow_reactions,
            allow_stickers => allow_stickers,
            allow_attachments => allow_attachments,
            slow_mode_seconds => slow_mode_seconds,
            join_approval_required => join_approval_required,
            locked => locked,
            add_members_policy => add_members_policy,
            scope => scope
        );
        if let Some(days) = self.message_retention_days {
            s.retention_days = Some(days);
        }
    }

    /// The settings this patch names, as the document stores them (one change writes them).
    pub(super) fn values(self) -> Vec<(&'static str, ScalarValue)> {
        let mut patched = Settings::defaults_for(ConvKind::Group);
        let named: Vec<&'static str> = [
            self.send_policy.map(|_| keys::SEND_POLICY),
            self.join_policy.map(|_| keys::JOIN_POLICY),
            self.info_edit_policy.map(|_| keys::INFO_EDIT_POLICY),
            self.subroom_policy.map(|_| keys::SUBROOM_POLICY),
            self.max_subroom_depth.map(|_| keys::MAX_SUBROOM_DEPTH),
            self.message_retention_days.map(|_| keys::RETENTION_DAYS),
            self.allow_reactions.map(|_| keys::ALLOW_REACTIONS),
            self.allow_stickers.map(|_| keys::ALLOW_STICKERS),
            self.allow_attachments.map(|_| keys::ALLOW_ATTACHMENTS),
            self.slow_mode_seconds.map(|_| keys::SLOW_MODE_SECONDS),
            self.join_approval_required
                .map(|_| keys::JOIN_APPROVAL_REQUIRED),
            self.locked.map(|_| keys::LOCKED),
            self.add_members_policy.map(|_| keys::ADD_MEMBERS_POLICY),
            self.scope.map(|_| keys::SCOPE),
        ]
        .into_iter()
        .flatten()
        .collect();
        self.apply(&mut patched);
        // `settings_values` is the one place that says how each setting is stored; it
        // leaves out an unset retention and an unlocked lock, which a patch writes as false.
        let stored = write::settings_values(&patched);
        named
            .into_iter()
            .map(|key| {
                let value = stored
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or_else(|| unstored_default(key), |(_, v)| v.clone());
                (key, value)
            })
            .collect()
    }
}

/// The stored value of a setting `settings_values` leaves out at its default.
fn unstored_default(key: &str) -> ScalarValue {
    let d = Settings::defaults_for(ConvKind::Group);
    match key {
        keys::ADD_MEMBERS_POLICY => ScalarValue::Str(d.add_members_policy.as_str().into()),
        keys::SCOPE => ScalarValue::Str(d.scope.as_str().into()),
        _ => ScalarValue::Boolean(false),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(alias = "type")]
    kind: ConvKind,
    id: Option<String>,
    title: Option<String>,
    description: Option<String>,
    avatar_url: Option<String>,
    #[serde(default)]
    members: Vec<MemberSpec>,
    #[serde(default)]
    settings: SettingsPatch,
    parent: Option<String>,
    parent_message: Option<String>,
    /// End-to-end encrypted, for good (groups and threads; docs/E2EE.md).
    #[serde(default)]
    encrypted: bool,
}

/// Ids the deterministic conversations and the REST routes own.
fn check_new_id(id: &ConvId) -> Result<(), ApiError> {
    let text = id.as_str();
    // `direct`, `support` and `discover` are routes under /v1/conversations/.
    if text.starts_with("d-")
        || text.starts_with("s-")
        || ["direct", "support", "discover"].contains(&text)
    {
        return Err(ApiError::invalid(
            "invalid_value",
            "id",
            "ids starting with d- or s- belong to direct conversations and support threads; direct, support and discover name routes",
        ));
    }
    Ok(())
}

/// `POST /v1/conversations`: a group, channel, thread or system conversation; 201.
pub async fn create(
    State(app): State<AppState>,
    caller: Writer,
    JsonBody(req): JsonBody<CreateRequest>,
) -> Result<Response, ApiError> {
    if matches!(req.kind, ConvKind::Direct | ConvKind::Support) {
        return Err(ApiError::invalid(
            "invalid_value",
            "kind",
            "direct conversations and support threads have their own endpoints",
        ));
    }
    let id = match req.id {
        Some(id) => {
            let id = ConvId::new(id)?;
            check_new_id(&id)?;
            id
        }
        None => ConvId::new(fresh_id("c-"))?,
    };
    let thread = match (req.kind, req.parent, req.parent_message) {
        (ConvKind::Thread, Some(parent), Some(message)) => {
            let parent = ConvId::new(parent)?;
            let message = MessageId::new(message)?;
            let Some(parent_conv) = app.engine.conversation(&caller.tenant, &parent).await else {
                return Err(ApiError::invalid(
                    "invalid_value",
                    "parent",
                    format!("no conversation {parent}"),
                ));
            };
            let depth = parent_conv
                .meta
                .as_ref()
                .and_then(|m| m.thread.as_ref())
                .map_or(0, |t| t.depth)
                + 1;
            Some(ThreadLink {
                parent,
                message,
                depth,
            })
        }
        (ConvKind::Thread, _, _) => {
            return Err(ApiError::invalid(
                "missing",
                "parent",
                "a thread needs parent and parent_message",
            ))
        }
        (_, None, None) => None,
        (_, _, _) => {
            return Err(ApiError::invalid(
                "invalid_value",
                "parent",
                "only threads have parent and parent_message",
            ))
        }
    };
    if app.engine.conversation(&caller.tenant, &id).await.is_some() {
        return Err(ApiError::conflict(
            DenyCode::AlreadyCreated.as_str(),
            format!("{id} exists"),
        ));
    }
    let now = now_ms();
    let mut creator = Member::new(caller.account.clone(), Role::Owner);
    creator.joined_at = Some(now);
    let mut members = vec![creator];
    let mut seen = BTreeSet::from([caller.account.clone()]);
    for spec in req.members {
        if !seen.insert(spec.account.clone()) {
            return Err(ApiError::invalid(
                "invalid_value",
                "members",
                format!(
                    "{} is listed twice (the creator is added as owner)",
                    spec.account
                ),
            ));
        }
        let mut m = Member::new(spec.account, spec.role.unwrap_or(join_role(req.kind)));
        m.joined_at = Some(now);
        m.invited_by = Some(caller.account.clone());
        members.push(m);
    }
    let mut settings = Settings::defaults_for(req.kind);
    req.settings.apply(&mut settings);
    let spec = CreateConv {
        kind: req.kind,
        created_by: caller.account.clone(),
        created_at: now,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread,
        info: Info {
            title: req.title,
            description: req.description,
            avatar: req.avatar_url,
            theme_color: None,
            theme_background: None,
            client_name: None,
            owner_name: None,
        },
        settings,
        members,
        encrypted: req.encrypted,
    };
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::create_conversation(doc, tag, &spec)),
        )
        .await;
    acked(outcome, |reason| {
        ApiError::conflict(DenyCode::AlreadyCreated.as_str(), reason)
    })?;
    respond_with(&app, &caller, &id, StatusCode::CREATED).await
}

// ---------- read ----------

/// `GET /v1/conversations/{id}`.
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Params(id): Params<String>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    readable(&app, &conv, &caller).await?;
    body(&app, StatusCode::OK, &conv, &caller.tenant).await
}

/// `GET /v1/conversations`: the caller's active conversations (threads only while the caller
/// may read them), most recent activity first,
/// with unread counts and the last message with its sender's name. Direct conversations the
/// caller hid are left out until a message created after the hide (its private document's
/// `hidden_at`).
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<ConversationList>, ApiError> {
    let items = app
        .engine
        .store()
        .conversations_of(&caller.tenant, &caller.account)
        .await?;
    let hidden = hidden_of(&app, &caller).await?;
    // Threads follow their parent: a thread whose parent the caller is out of is not listed.
    let parents = items.iter().filter_map(|i| i.conv.parent.clone()).collect();
    let closed = app
        .engine
        .closed_parents(&caller.tenant, &caller.account, parents)
        .await;
    let listed: Vec<&ConvListItem> = items
        .iter()
        .filter(|item| {
            hidden
                .get(&item.conv.conv)
                .is_none_or(|prefs| !prefs.hides(item.last_message.as_ref().map(|m| m.created_at)))
        })
        .filter(|item| {
            item.conv
                .parent
                .as_ref()
                .is_none_or(|p| !closed.contains(p))
        })
        .collect();
    // A few at a time: a long list does not load every unit at once. Owned values, so
    // the futures hold no borrow of the list.
    let asks: Vec<_> = listed
        .iter()
        .map(|item| {
            let author = item.last_message.as_ref().map(|m| m.author.clone());
            let ask = (item.conv.conv.clone(), author, caller.account.clone());
            last_sender(app.clone(), caller.tenant.clone(), ask)
        })
        .collect();
    let names: Vec<LastSender> = futures_util::stream::iter(asks)
        .buffered(NAME_READS)
        .collect()
        .await;
    Ok(Json(ConversationList {
        conversations: listed
            .into_iter()
            .zip(names)
            .map(|(item, last)| {
                ConversationListEntry::of(item, last.name, last.encrypted, last.role)
            })
            .collect(),
    }))
}

/// How many conversations the list reads at once for the last senders' names.
const NAME_READS: usize = 16;

/// What the list says of a conversation beyond its projection row: the name the
/// conversation gives the last message's author now (`Conversation::name_of`), whether it is
/// end-to-end encrypted (its content is sealed, the preview empty), and the caller's role
/// now with when it lapses: the projection keeps no names and the role as written, and a
/// name changes, and a temporary role lapses, without a change the projection sees.
#[derive(Default)]
struct LastSender {
    name: Option<String>,
    encrypted: bool,
    role: Option<(&'static str, Option<i64>)>,
}

/// [`LastSender`], read from the conversation's unit (loaded if it is not in memory).
/// `ask`: the conversation, the last message's author (`None` without one), the caller.
async fn last_sender(
    app: AppState,
    tenant: TenantId,
    ask: (ConvId, Option<AccountId>, AccountId),
) -> LastSender {
    let (conv, author, me) = ask;
    let Some(conv) = app.engine.conversation(&tenant, &conv).await else {
        return LastSender::default();
    };
    let role = conv.member(&me).map(|m| {
        let m = m.at(now_ms());
        (m.role.as_str(), m.role_until)
    });
    LastSender {
        name: author.and_then(|a| conv.name_of(&a).map(str::to_owned)),
        encrypted: conv.encrypted(),
        role,
    }
}

// ---------- members ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberRequest {
    account: AccountId,
    role: Option<Role>,
}

/// `POST /v1/conversations/{id}/members`: add someone (needs add rights), or join yourself
/// (where the join policy allows). An active member is answered as is (200), unless another
/// role was asked for (409: roles change through the sync protocol).
pub async fn add_member(
    State(app): State<AppState>,
    caller: Writer,
    Params(id): Params<String>,
    JsonBody(req): JsonBody<AddMemberRequest>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let conv = load(&app, &caller, &id).await?;
    let kind = conv.kind().unwrap_or(ConvKind::Group);
    if let Some(existing) = conv.active_member(&req.account) {
        readable(&app, &conv, &caller).await?;
        if req.role.is_none_or(|r| r == existing.role) {
            return body(&app, StatusCode::OK, &conv, &caller.tenant).await;
        }
        return Err(ApiError::conflict(
            "already_exists",
            format!(
                "{} is already a member ({})",
                req.account,
                existing.role.as_str()
            ),
        ));
    }
    let mut member = Member::new(req.account.clone(), req.role.unwrap_or(join_role(kind)));
    let now = now_ms();
    member.joined_at = Some(now);
    if req.account != caller.account {
        member.invited_by = Some(caller.account.clone());
    }
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::add_member(doc, tag, now, &member)),
        )
        .await;
    acked(outcome, not_applicable_conflict)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// `DELETE /v1/conversations/{id}/members/{account}`: leave (your own account) or remove
/// (needs remove rights). A member who is already gone is answered as is.
pub async fn remove_member(
    State(app): State<AppState>,
    caller: Writer,
    Params((id, account)): Params<(String, String)>,
) -> Result<Response, ApiError> {
    let id = path_conv(&id)?;
    let account = AccountId::new(account)?;
    let conv = load(&app, &caller, &id).await?;
    let Some(member) = conv.member(&account) else {
        readable(&app, &conv, &caller).await?;
        return Err(ApiError::not_found(format!(
            "{account} is not a member of {id}"
        )));
    };
    if !member.is_active() {
        if account != caller.account {
            readable(&app, &conv, &caller).await?;
        }
        return body(&app, StatusCode::OK, &conv, &caller.tenant).await;
    }
    let status = if account == caller.account {
        MemberStatus::Left
    } else {
        MemberStatus::Removed
    };
    let now = now_ms();
    let outcome = caller
        .write(
            &app,
            DocId::conv(&caller.tenant, &id),
            Box::new(move |doc, tag| write::set_member_status(doc, tag, now, &account, status)),
        )
        .await;
    acked(outcome, ApiError::not_found)?;
    respond_with(&app, &caller, &id, StatusCode::OK).await
}

/// The caller's per-conversation preferences that hide a conversation (`hidden_at` set),
/// from its private document as its unit holds it (in memory after the first read).
async fn hidden_of(
    app: &AppState,
    caller: &Caller,
) -> Result<BTreeMap<ConvId, ConvPrefs>, ApiError> {
    let data = app
        .engine
        .private_data(&caller.tenant, &caller.account)
        .await
        .ok_or_else(|| ApiError::unavailable("the private document could not be read"))?;
    let mut convs = data.convs;
    convs.retain(|_, prefs| prefs.hidden_at.is_some());
    Ok(convs)
}
