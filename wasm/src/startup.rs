//! Start-up: open the store, check that it belongs to this account, find this device's actor
//! and name, let the engine restore what the store holds (it asks for what it needs), then
//! attach the device's MLS state.

use confab_core::automerge::ActorId;
use confab_core::client::{ClientConfig, ClientEngine, HostKey, LocalStore, MemoryStore, StoreOp};
use confab_core::ids::DeviceId;

use crate::error::{Failure, Result};
use crate::js;
use crate::runtime::Runtime;
use crate::store::{AnyStore, IdbStore, JsStore};

/// Where the client keeps its data.
#[derive(Debug)]
pub enum StorageChoice {
    Memory,
    IndexedDb(String),
    Adapter(wasm_bindgen::JsValue),
}

pub async fn init(rt: &Runtime, choice: StorageChoice) -> Result<()> {
    let store = match choice {
        StorageChoice::Memory => AnyStore::Memory(MemoryStore::new()),
        StorageChoice::IndexedDb(name) => AnyStore::IndexedDb(IdbStore::open(&name).await?),
        StorageChoice::Adapter(adapter) => AnyStore::Adapter(JsStore::new(adapter)?),
    };
    let store = rt.install_store(store)?;
    let put = |key: HostKey, value: Vec<u8>| vec![StoreOp::Put(key.key().into(), value)];

    // One store belongs to one account of one tenant.
    let identity = format!("{}/{}", rt.tenant(), rt.account());
    match store.get(HostKey::Account.key()).await? {
        Some(stored) if stored != identity.as_bytes() => {
            return Err(Failure::new(
                "store_mismatch",
                format!(
                    "this store belongs to {}, not {identity}",
                    String::from_utf8_lossy(&stored)
                ),
            ))
        }
        Some(_) => {}
        None => {
            store
                .write(put(HostKey::Account, identity.into_bytes()))
                .await?
        }
    }
    // This device's actor: chosen once, kept.
    let actor = match store.get(HostKey::Actor.key()).await? {
        Some(bytes) if bytes.len() == 16 => ActorId::from(&bytes[..]),
        _ => {
            let bytes = js::random_bytes::<16>();
            store.write(put(HostKey::Actor, bytes.to_vec())).await?;
            ActorId::from(&bytes[..])
        }
    };
    let conn = rt.connection();
    if conn.device().is_empty() {
        let device = match store.get(HostKey::Device.key()).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => {
                let device = format!("web-{}", &js::new_id("")[11..19]);
                store
                    .write(put(HostKey::Device, device.clone().into_bytes()))
                    .await?;
                device
            }
        };
        conn.set_device(device);
    }

    let engine = ClientEngine::restoring(ClientConfig {
        tenant: rt.tenant().clone(),
        account: rt.account().clone(),
        actor,
    });
    rt.start_engine(engine).await?;

    // This browser is an MLS device (docs/E2EE.md, "On the device"): its state comes back
    // from the store, or a new device is made (and saved) on first start.
    let device = DeviceId::new(conn.device())?;
    let saved = store.scan(HostKey::Mls.key()).await?;
    rt.with_engine(|e| e.attach_device(device, &saved))??;
    rt.pump();
    Ok(())
}
