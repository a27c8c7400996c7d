//! The device's identity records, kept in the store beside the engine's data (the same
//! records, under the same keys, as the wasm package keeps).

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, HostKey, LocalStore, StoreError, StoreOp};
use confab_core::ids::{AccountId, TenantId};

use crate::Error;

/// The engine's configuration for `account` of `tenant` on this device, from `store`:
///
/// - the store's owner (`HostKey::Account`): recorded on first use; a store of another
///   account is `Error::StoreMismatch` (one store belongs to one account);
/// - the device's Automerge actor (`HostKey::Actor`): the stored one, or 16 fresh random
///   bytes stored now. Every change carries its actor, so a store keeps one for life and
///   two devices never share one.
pub async fn device_config<S: LocalStore>(
    store: &S,
    tenant: TenantId,
    account: AccountId,
) -> Result<ClientConfig, Error> {
    let identity = format!("{tenant}/{account}");
    match store.get(HostKey::Account.key()).await? {
        Some(stored) if stored != identity.as_bytes() => {
            return Err(Error::StoreMismatch {
                owner: String::from_utf8_lossy(&stored).into_owned(),
                wanted: identity,
            })
        }
        Some(_) => {}
        None => {
            store
                .write(vec![StoreOp::Put(
                    HostKey::Account.key().to_owned(),
                    identity.into_bytes(),
                )])
                .await?;
        }
    }
    let actor = match store.get(HostKey::Actor.key()).await? {
        Some(bytes) if bytes.len() == 16 => ActorId::from(&bytes[..]),
        _ => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .map_err(|e| StoreError(format!("no random source for a new actor: {e}")))?;
            store
                .write(vec![StoreOp::Put(
                    HostKey::Actor.key().to_owned(),
                    bytes.to_vec(),
                )])
                .await?;
            ActorId::from(&bytes[..])
        }
    };
    Ok(ClientConfig {
        tenant,
        account,
        actor,
    })
}
