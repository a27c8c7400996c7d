//! The one conversation fixture: a `CreateConv` built from an owner and its members, and the
//! text message every suite posts.

use anyhow::Result;
use confab_core::automerge::Change;
use confab_core::doc::write::{self, CreateConv};
use confab_core::ids::{AccountId, ConvId, DocId};
use confab_core::model::conversation::{ConvKind, Info, Member, Role, Settings, DEFAULT_BUCKET_MS};
use confab_core::model::message::NewMessage;

use crate::device::Device;
use crate::ids::{bucket_doc, msg_id};

/// Builds the creation of a conversation: `owner` as owner, every other member invited by
/// the owner, the kind's default settings, the default bucket width, no title.
#[derive(Debug, Clone)]
pub struct ConvFixture {
    spec: CreateConv,
}

impl ConvFixture {
    pub fn new(kind: ConvKind, owner: AccountId, created_at: i64) -> Self {
        ConvFixture {
            spec: CreateConv {
                kind,
                created_by: owner.clone(),
                created_at,
                bucket_ms: DEFAULT_BUCKET_MS,
                thread: None,
                info: Info::default(),
                settings: Settings::defaults_for(kind),
                members: vec![Member::new(owner, Role::Owner)],
                encrypted: false,
            },
        }
    }

    pub fn group(owner: AccountId, created_at: i64) -> Self {
        Self::new(ConvKind::Group, owner, created_at)
    }

    /// Adds `account` at `role`, invited by the owner.
    pub fn member(mut self, account: AccountId, role: Role) -> Self {
        let mut m = Member::new(account, role);
        m.invited_by = Some(self.spec.created_by.clone());
        self.spec.members.push(m);
        self
    }

    /// Adds every account at `role`.
    pub fn members(self, accounts: impl IntoIterator<Item = AccountId>, role: Role) -> Self {
        accounts
            .into_iter()
            .fold(self, |fixture, a| fixture.member(a, role))
    }

    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.spec.info.title = Some(title.into());
        self
    }

    /// Any other change to the spec (settings, per-member fields, threads).
    pub fn tweak(mut self, f: impl FnOnce(&mut CreateConv)) -> Self {
        f(&mut self.spec);
        self
    }

    pub fn build(self) -> CreateConv {
        self.spec
    }

    /// The creation change of conversation `conv`, written on `dev`'s replica.
    pub fn write(&self, dev: &mut Device, conv: &ConvId) -> Result<(DocId, Change)> {
        let doc = crate::ids::conv_doc(conv);
        let change = dev.write(&doc, |d, t| write::create_conversation(d, t, &self.spec))?;
        Ok((doc, change))
    }
}

/// A text message change from `dev` in `conv`, created at `at`, and the bucket it goes to.
pub fn text_message(
    dev: &mut Device,
    conv: &ConvId,
    id: &str,
    body: &str,
    at: i64,
) -> Result<(DocId, Change)> {
    let doc = bucket_doc(conv, at);
    let m = NewMessage::text(msg_id(id), dev.account_id(), body, at);
    let change = dev.write(&doc, |d, t| write::post_message(d, t, &m))?;
    Ok((doc, change))
}
