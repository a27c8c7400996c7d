//! The engine's side of refusals for people (`crate::client::refusal` words them): the
//! scene a refusal is told in, with names and titles from what the engine holds.

use crate::client::engine::ClientEngine;
use crate::client::intent::Intent;
use crate::client::refusal::{action, sentence, Action, Code, Scene};
use crate::ids::{AccountId, ConvId};
use crate::model::conversation::{ConvKind, Conversation};

impl ClientEngine {
    /// Why `intent` was refused with `code`, in one sentence for people, from this device's
    /// documents. `code` is any code of `Code` (an unknown one gets a general sentence).
    pub fn explain(&self, intent: &Intent, code: &str) -> String {
        let scene = self.scene(intent);
        match Code::parse(code) {
            Some(code) => sentence::sentence(code, &scene),
            None => sentence::unknown(&scene),
        }
    }

    /// The name people know `account` by here: its nickname in `conv`, its profile's display
    /// name, a contact's nickname, or else its id.
    pub fn display_name(&self, account: &AccountId, conv: Option<&Conversation>) -> String {
        if let Some(nick) = conv
            .and_then(|c| c.members.get(account))
            .and_then(|m| m.nickname.as_deref())
            .filter(|n| !n.trim().is_empty())
        {
            return nick.to_owned();
        }
        if let Some(profile) = self.profile(account) {
            if !profile.display_name.trim().is_empty() {
                return profile.display_name;
            }
        }
        let contact = self
            .contacts()
            .into_values()
            .filter(|c| c.account.as_ref() == Some(account))
            .find_map(|c| c.nickname.filter(|n| !n.trim().is_empty()));
        contact.unwrap_or_else(|| account.as_str().to_owned())
    }

    /// What a sentence about `conv` reads of it: title, kind, settings, lifecycle and the
    /// entries of `accounts` (every member of a direct conversation: two), not the member
    /// list of a group (a refusal in a group of 1,000 costs what it costs in one of 10).
    fn named_conv(&self, conv: &ConvId, accounts: &[&AccountId]) -> Option<Conversation> {
        use crate::doc::read;
        let state = self
            .docs
            .get(&crate::ids::DocId::conv(&self.config.tenant, conv))?;
        let doc = &state.local;
        let meta = read::read_meta(doc)?;
        let members = match meta.kind {
            ConvKind::Direct => read::read_members(doc),
            _ => {
                let obj = read::get_map(doc, &automerge::ROOT, crate::doc::schema::keys::MEMBERS);
                accounts
                    .iter()
                    .filter_map(|a| {
                        let m = read::read_member(doc, obj.as_ref()?, a)?;
                        Some(((*a).clone(), m))
                    })
                    .collect()
            }
        };
        Some(Conversation {
            id: conv.clone(),
            settings: read::read_settings(doc, meta.kind),
            info: read::read_info(doc),
            meta: Some(meta),
            members,
            pins: Default::default(),
            reads: Default::default(),
            delivered: Default::default(),
            lifecycle: read::read_lifecycle(doc),
            mls: read::read_mls(doc),
        })
    }

    /// A conversation as people know it.
    pub fn place_name(&self, conv_id: &ConvId) -> String {
        let conv = self.named_conv(conv_id, &[]);
        let Some(conv) = conv.as_ref() else {
            return conv_id.as_str().to_owned();
        };
        if let Some(title) = conv.info.title.as_deref().filter(|t| !t.trim().is_empty()) {
            return title.to_owned();
        }
        let me = &self.config.account;
        match conv.meta.as_ref().map(|m| m.kind) {
            Some(ConvKind::Direct) => match conv.members.keys().find(|a| *a != me) {
                Some(peer) => format!("your chat with {}", self.display_name(peer, Some(conv))),
                None => "this chat".to_owned(),
            },
            Some(ConvKind::Support) => match conv.meta.as_ref().and_then(|m| m.resource.as_ref()) {
                Some(r) => format!("the support thread about {}", r.resource.as_str()),
                None => "this support thread".to_owned(),
            },
            Some(kind) => format!("this {}", kind.as_str()),
            None => "this conversation".to_owned(),
        }
    }

    fn scene(&self, intent: &Intent) -> Scene {
        let conv_id = action::conv_of(intent);
        let target_id = action::target_of(intent);
        let mut named = vec![&self.config.account];
        named.extend(target_id);
        let conv = conv_id.and_then(|c| self.named_conv(c, &named));
        let me = conv
            .as_ref()
            .and_then(|c| c.members.get(&self.config.account));
        let target = target_id.and_then(|t| conv.as_ref().and_then(|c| c.members.get(t)));
        let name = |a: &AccountId| self.display_name(a, conv.as_ref());
        Scene {
            place: conv_id.map_or_else(|| "this conversation".to_owned(), |c| self.place_name(c)),
            my_role: me.map(|m| m.role),
            my_status: me.map(|m| m.status),
            action: Action::of(intent, &name),
            target: target_id.map(name),
            target_role: target.map(|m| m.role),
            target_status: target.map(|m| m.status),
            slow_mode_seconds: conv.as_ref().map(|c| c.settings.slow_mode_seconds),
        }
    }
}
