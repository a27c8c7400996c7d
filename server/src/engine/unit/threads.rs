//! A thread's unit and its parent's (see `engine::threads`): asking where an account stands
//! in the parent, answering that for the threads below, and ending the subscriptions of
//! whoever the parent let go.

use std::collections::BTreeSet;

use confab_core::accept::Need;
use confab_core::ids::{AccountId, MessageId};
use confab_core::policy::{DenyCode, ParentMessage, Standing};
use confab_core::protocol::ErrorCode;

use super::{Unit, UnitError};
use crate::engine::threads::Standings;
use crate::engine::UnitKey;

impl Unit {
    /// Answers the acceptor's [`Need::Standing`] from the parent's unit. The first answer
    /// registers this thread under its parent, so the parent's moves reach it.
    pub(super) async fn ask_standing(
        &mut self,
        parent: confab_core::ids::ConvId,
        account: AccountId,
    ) -> Result<(), UnitError> {
        let UnitKey::Conv(tenant, conv) = &self.key else {
            return Ok(());
        };
        if self.parent.as_ref() != Some(&parent) {
            if let Some(old) = self.parent.take() {
                self.engine.threads().remove(tenant, &old, conv);
            }
            self.engine.threads().add(tenant, &parent, conv);
            self.parent = Some(parent.clone());
        }
        let tenant = tenant.clone();
        let answer = self
            .engine
            .standings(&tenant, &parent, vec![account.clone()])
            .await
            .map_err(UnitError::Parent)?;
        let standing = answer
            .standings
            .first()
            .copied()
            .unwrap_or(Standing::Out(None));
        self.acceptor
            .answer_standing(account, standing, answer.policy_seq);
        Ok(())
    }

    /// Makes sure `account`'s standing in the parent is known before it reads this thread
    /// (nothing to do for a conversation that is no thread, or a service account).
    pub(super) async fn standing_for_read(
        &mut self,
        account: &AccountId,
        service: bool,
    ) -> Result<(), (ErrorCode, String)> {
        if let Some(Need::Standing { parent, account }) =
            self.acceptor.standing_to_ask(account, service)
        {
            self.ask_standing(parent, account)
                .await
                .map_err(|e| (ErrorCode::Unavailable, e.to_string()))?;
        }
        Ok(())
    }

    /// The parent's side of [`Need::Standing`]: where each account stands here, as a thread
    /// of this conversation sees it (asking this conversation's own parent where needed).
    pub(super) async fn standings_here(
        &mut self,
        accounts: Vec<AccountId>,
    ) -> Result<Standings, UnitError> {
        let mut standings = Vec::with_capacity(accounts.len());
        for account in accounts {
            // Bounded: the conversation document, then at most one question to the parent.
            let mut standing = None;
            for _ in 0..3 {
                match self.acceptor.standing_of(&account) {
                    Ok(s) => {
                        standing = Some(s);
                        break;
                    }
                    Err(Need::Doc(doc)) => self.load(doc).await?,
                    Err(Need::Standing { parent, account }) => {
                        self.ask_standing(parent, account).await?
                    }
                    Err(other) => {
                        return Err(UnitError::Parent(format!("unexpected need {other:?}")))
                    }
                }
            }
            standings.push(standing.unwrap_or(Standing::Out(None)));
        }
        Ok(Standings {
            policy_seq: self.acceptor.policy_seq(),
            standings,
        })
    }

    /// Whether this conversation holds `message` and it is not deleted: the projection's
    /// row, found by id (everything submitted before is committed when this runs).
    pub(super) async fn parent_message_here(
        &mut self,
        message: MessageId,
    ) -> Result<ParentMessage, UnitError> {
        let UnitKey::Conv(tenant, conv) = &self.key else {
            return Ok(ParentMessage::Missing);
        };
        let (tenant, conv) = (tenant.clone(), conv.clone());
        let deleted = self
            .engine
            .read(move |store| async move { store.message_deleted(&tenant, &conv, &message).await })
            .await?;
        Ok(match deleted {
            None => ParentMessage::Missing,
            Some(true) => ParentMessage::Deleted,
            Some(false) => ParentMessage::Present,
        })
    }

    /// The parent (or a conversation above it) may have moved: forget every standing, tell
    /// the threads below, and ask again for each person subscribed here; whoever is out
    /// loses the subscriptions (`not_parent_member`).
    pub(super) async fn parent_moved(&mut self) {
        self.acceptor.parent_moved();
        let UnitKey::Conv(tenant, conv) = &self.key else {
            return;
        };
        let (tenant, conv) = (tenant.clone(), conv.clone());
        self.engine.parent_moved(&tenant, &conv);
        let Some(parent) = self.acceptor.thread_parent().cloned() else {
            return;
        };
        let accounts: BTreeSet<AccountId> = self
            .subscribers
            .values()
            .flatten()
            .filter(|c| !c.service)
            .map(|c| c.account.clone())
            .collect();
        if accounts.is_empty() {
            return;
        }
        let accounts: Vec<AccountId> = accounts.into_iter().collect();
        let answer = match self
            .engine
            .standings(&tenant, &parent, accounts.clone())
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                // Asked again on the next read or write of each of them.
                tracing::warn!(%parent, error = %e, "a thread could not ask its parent");
                return;
            }
        };
        for (account, standing) in accounts.into_iter().zip(answer.standings) {
            self.acceptor
                .answer_standing(account.clone(), standing, answer.policy_seq);
            if !standing.is_active() {
                let reason = format!("{account} is no longer in {parent}, the parent of {conv}");
                self.revoke_with(&account, DenyCode::NotParentMember, reason);
            }
        }
    }

    /// Takes this thread out of its parent's list (the unit leaves memory).
    pub(super) fn leave_parent(&mut self) {
        if let (Some(parent), UnitKey::Conv(tenant, conv)) = (self.parent.take(), &self.key) {
            self.engine.threads().remove(tenant, &parent, conv);
        }
    }
}
