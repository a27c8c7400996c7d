//! An end-to-end encrypted group for the benchmarks, made with `core::e2ee` as a member's
//! device makes one (docs/E2EE.md): the first account's device starts the MLS group of the
//! conversation and commits every other device in one commit (epoch 1), written into the
//! conversation document as `mls/group_info`, `mls/tree`, `mls/commits/0` and
//! `mls/welcomes/0`; the others join from that Welcome. Messages are then sealed as the
//! engine seals them: the CBOR of `SealedContent` encrypted for the group, bound to the
//! message id, with an empty body in the clear.
//!
//! Used by `catchup --encrypted` (the writers seal, the reader's engine opens) and by
//! `loadgen --modes sealed` (every client seals its burst before the clock starts).

use anyhow::{anyhow, Context, Result};
use confab_core::automerge::Change;
use confab_core::client::HostKey;
use confab_core::doc::write::{self, MlsWrite};
use confab_core::e2ee::{self, Device as Mls, DeviceIdentity};
use confab_core::ids::{AccountId, DeviceId, DocId, MessageId, TenantId};
use confab_core::model::message::{sealed_aad, NewMessage, SealedContent};
use confab_core::protocol::ClientFrame;
use confab_testkit::Device;
use serde::Serialize;
use serde_bytes::ByteBuf;

/// The group and every member's MLS device, in the order of the accounts given.
#[derive(Debug)]
pub struct SealedGroup {
    group: Vec<u8>,
    devices: Vec<Mls>,
    welcome: Option<Vec<u8>>,
}

impl SealedGroup {
    /// MLS devices of `accounts` of `tenant`, each named `devices[i]` (the name its
    /// connection's `hello` sends: the server checks that a sealed message comes from a
    /// device in the group). The first makes the group of `conv_doc` and commits the others.
    /// Answers the group and the two changes `owner` (the first account's replica, which
    /// holds the encrypted creation) submits on `conv_doc` in order: the group made, then the
    /// commit. Once both are accepted, [`SealedGroup::confirm`].
    pub fn make(
        tenant: &TenantId,
        conv_doc: &DocId,
        members: &[(&str, &str)],
        owner: &mut Device,
        now: i64,
    ) -> Result<(Self, [Change; 2])> {
        let mut devices = Vec::with_capacity(members.len());
        for (account, device) in members {
            let identity = DeviceIdentity::new(
                tenant.clone(),
                AccountId::new(*account)?,
                DeviceId::new(*device)?,
            );
            devices.push(Mls::new(identity).map_err(|e| anyhow!("an MLS device: {e}"))?);
        }
        let group = e2ee::group_id(conv_doc);
        let (first, others) = devices
            .split_first_mut()
            .context("a group needs a member")?;
        let init = first
            .create_group(&group)
            .map_err(|e| anyhow!("the group: {e}"))?;
        let packages = others
            .iter()
            .map(|d| d.key_package(false))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow!("a key package: {e}"))?;
        let bundle = first
            .commit(&group, &packages, &[])
            .map_err(|e| anyhow!("the commit: {e}"))?;
        let made = owner.write(conv_doc, |d, t| {
            write::write_mls(
                d,
                t,
                now,
                MlsWrite::Init {
                    group_info: &init.group_info,
                    tree: &init.ratchet_tree,
                },
            )
        })?;
        let added = owner.write(conv_doc, |d, t| {
            write::write_mls(
                d,
                t,
                now,
                MlsWrite::Commit {
                    epoch: bundle.epoch,
                    commit: &bundle.commit,
                    welcome: bundle.welcome.as_deref(),
                },
            )
        })?;
        let sealed = SealedGroup {
            group,
            devices,
            welcome: bundle.welcome,
        };
        Ok((sealed, [made, added]))
    }

    /// The upload that registers member `member`'s device in the server's directory: a
    /// device's first upload binds its signature key, and the Delivery Service takes a group
    /// or a commit only of registered devices. Sent on a connection of that member's account
    /// whose `hello` names the device, before the group's changes.
    pub fn registration(&self, member: usize) -> Result<ClientFrame> {
        let device = self
            .devices
            .get(member)
            .ok_or_else(|| anyhow!("no member {member}"))?;
        let package = device
            .key_package(false)
            .map_err(|e| anyhow!("a key package: {e}"))?;
        Ok(ClientFrame::UploadKeyPackages {
            id: member as u64 + 1,
            packages: vec![ByteBuf::from(package)],
            last_resort: None,
        })
    }

    /// The server took the commit: its maker moves to epoch 1, the others join from the
    /// Welcome.
    pub fn confirm(&mut self) -> Result<()> {
        let (first, others) = self
            .devices
            .split_first_mut()
            .context("a group needs a member")?;
        first
            .confirm_commit(&self.group)
            .map_err(|e| anyhow!("confirming the commit: {e}"))?;
        if let Some(welcome) = self.welcome.take() {
            for device in others {
                device
                    .join(&welcome)
                    .map_err(|e| anyhow!("joining from the Welcome: {e}"))?;
            }
        }
        Ok(())
    }

    /// `body` sealed by member `member` into message `id` written by `author` at `at`: what a
    /// device sends into an encrypted conversation (the content out of the clear).
    pub fn message(
        &mut self,
        member: usize,
        id: MessageId,
        author: AccountId,
        body: String,
        at: i64,
    ) -> Result<NewMessage> {
        let device = self
            .devices
            .get_mut(member)
            .ok_or_else(|| anyhow!("no member {member}"))?;
        let content = SealedContent {
            body,
            ..SealedContent::default()
        };
        let sealed = device
            .encrypt(&self.group, &sealed_aad(&id, None), &content.to_bytes())
            .map_err(|e| anyhow!("sealing: {e}"))?;
        let mut message = NewMessage::text(id, author, "", at);
        message.sealed = Some(sealed);
        Ok(message)
    }

    /// Member `member`'s device as a client's store can keep it (the `HostKey::Mls` record,
    /// read by `ClientEngine::attach_device`): the key and the record, in the whole-state
    /// form, which the engine loads and writes again as entries on its first save.
    pub fn saved(&self, member: usize) -> Result<(&'static str, Vec<u8>)> {
        /// The engine's whole-state record (`core/src/client/mls_saved.rs`, `Whole`): the
        /// device, and no commit in flight. A change of that format makes `attach_device`
        /// refuse it.
        #[derive(Serialize)]
        struct Saved {
            device: ByteBuf,
            committing: std::collections::BTreeMap<u64, ()>,
        }
        let device = self
            .devices
            .get(member)
            .ok_or_else(|| anyhow!("no member {member}"))?;
        let saved = Saved {
            device: ByteBuf::from(device.to_bytes()),
            committing: Default::default(),
        };
        let mut bytes = Vec::new();
        ciborium::ser::into_writer(&saved, &mut bytes).map_err(|e| anyhow!("the record: {e}"))?;
        Ok((HostKey::Mls.key(), bytes))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use confab_core::automerge::ActorId;
    use confab_core::client::{ClientConfig, ClientEngine};
    use confab_core::ids::ConvId;

    use super::*;

    /// A member's record is one the engine takes as its device, in the group at epoch 1,
    /// and what another member seals carries no content in the clear.
    #[test]
    fn a_member_record_attaches_to_an_engine_in_the_group() {
        let tenant = TenantId::new("acme").unwrap();
        let conv = ConvId::new("sealed").unwrap();
        let doc = DocId::conv(&tenant, &conv);
        let mut owner = Device::new("w0", 1);
        let members = [("w0", "writer"), ("reader", "phone")];
        let (mut group, changes) =
            SealedGroup::make(&tenant, &doc, &members, &mut owner, 1).unwrap();
        assert_ne!(changes[0].hash(), changes[1].hash());
        group.confirm().unwrap();

        let id = MessageId::new("m1").unwrap();
        let author = AccountId::new("w0").unwrap();
        let m = group.message(0, id, author, "secret".into(), 1).unwrap();
        assert!(m.body.is_empty());
        assert!(m.sealed.as_ref().is_some_and(|s| !s.is_empty()));

        let (key, saved) = group.saved(1).unwrap();
        assert_eq!(key, HostKey::Mls.key());
        let mut engine = ClientEngine::new(ClientConfig {
            tenant: tenant.clone(),
            account: AccountId::new("reader").unwrap(),
            actor: ActorId::from(&[1u8; 16][..]),
        });
        engine
            .attach_device(DeviceId::new("phone").unwrap(), &[(key.to_owned(), saved)])
            .unwrap();
        assert_eq!(engine.group_epoch(&conv), Some(1));
        // Another device's record is refused as that device.
        let (_, writer) = group.saved(0).unwrap();
        let mut other = ClientEngine::new(ClientConfig {
            tenant,
            account: AccountId::new("reader").unwrap(),
            actor: ActorId::from(&[2u8; 16][..]),
        });
        assert!(other
            .attach_device(DeviceId::new("phone").unwrap(), &[(key.to_owned(), writer)])
            .is_err());
    }
}
