//! The MLS directory on Postgres: the shared statements, with row locks (`SKIP LOCKED` for claims).

use async_trait::async_trait;
use confab_core::e2ee::DeviceIdentity;
use confab_core::ids::{AccountId, DeviceId, TenantId};

use super::PgStore;
use crate::store::devices::{pg as devices, Claimed, DeviceRow, Ordinary, Upload, UploadRefused};
use crate::store::{Devices, Result};

#[async_trait]
impl Devices for PgStore {
    async fn upload_key_packages(
        &self,
        upload: &Upload<'_>,
    ) -> Result<std::result::Result<u64, UploadRefused>> {
        on_pool!(self, |conn| devices::upload(conn, upload))
    }

    async fn claim_key_packages(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
        ordinary: &dyn Ordinary,
        at: i64,
    ) -> Result<Vec<Claimed>> {
        on_pool!(self, |conn| devices::claim(
            conn, tenant, accounts, ordinary, at
        ))
    }

    async fn co_members(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        others: &[AccountId],
    ) -> Result<Vec<AccountId>> {
        on_pool!(self, |conn| devices::co_members(
            conn, tenant, account, others
        ))
    }

    async fn devices_of(
        &self,
        tenant: &TenantId,
        accounts: &[AccountId],
    ) -> Result<Vec<DeviceRow>> {
        on_pool!(self, |conn| devices::devices_of(conn, tenant, accounts))
    }

    async fn directory_of(
        &self,
        tenant: &TenantId,
        ask: &confab_core::e2ee::DirectoryAsk,
    ) -> Result<confab_core::e2ee::DirectoryAnswer> {
        on_pool!(self, |conn| devices::directory_of(conn, tenant, ask))
    }

    async fn removed_devices_of(
        &self,
        tenant: &TenantId,
        account: &AccountId,
    ) -> Result<Vec<DeviceId>> {
        on_pool!(self, |conn| devices::removed_of(conn, tenant, account))
    }

    async fn remove_device(&self, device: &DeviceIdentity, at: i64) -> Result<bool> {
        on_pool!(self, |conn| devices::remove(conn, device, at))
    }

    async fn key_packages_held(&self, device: &DeviceIdentity, at: i64) -> Result<u64> {
        on_pool!(self, |conn| devices::held_by(conn, device, at))
    }
}
