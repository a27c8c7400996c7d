//! The MLS directory: registered devices with the signature key each is bound to, their key
//! packages, the references of the packages claimed, and each tenant's removal generation
//! (migrations: Postgres 0024 and 0046, SQLite 0017 and 0046; docs/E2EE.md, "Devices and key
//! packages").
//!
//! The statements are written once here; `queries!` makes each backend's copy with its
//! dialect's words: the row locks (`FOR UPDATE`, `FOR UPDATE SKIP LOCKED` on Postgres,
//! nothing on SQLite, whose writes each start with `BEGIN IMMEDIATE` and so run one at a
//! time) and how a list of accounts
//! is bound (an array on Postgres, a JSON array on SQLite).
//!
//! A claimed ordinary package is deleted and its reference recorded in the same transaction,
//! so it is handed out once, even to two claimers at once on two nodes: on Postgres each
//! claim takes the oldest package no other transaction holds (`SKIP LOCKED`). An upload
//! checks the claimed references after inserting its packages, so a package claimed while it
//! is uploaded again is refused, not stored twice.
//!
//! Whose ordinary packages a claim may take is the caller's to say ([`Ordinary`], asked
//! device by device); the others answer their last-resort package. `co_members` reads the
//! `memberships` projection for the rule the connection applies (docs/E2EE.md, "Claim").

use confab_core::e2ee::DeviceIdentity;
use confab_core::ids::{AccountId, DeviceId};

use super::columns::{account, Cols};
use super::{Result, StoreError};

/// One key package to store: its reference (the MLS `KeyPackageRef`) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewKeyPackage {
    pub reference: Vec<u8>,
    pub bytes: Vec<u8>,
}

/// An upload of one device's key packages, checked by `e2ee::ds::check_key_package`.
#[derive(Debug, Clone)]
pub struct Upload<'a> {
    pub device: &'a DeviceIdentity,
    /// The signature key every package carries (bound to the device by its first upload).
    pub signature_key: &'a [u8],
    pub packages: &'a [NewKeyPackage],
    /// Replaces the device's last-resort package.
    pub last_resort: Option<&'a NewKeyPackage>,
    /// The most ordinary packages the device may hold after the upload.
    pub cap: u64,
    pub at: i64,
}

/// Why an upload stored nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadRefused {
    /// The device is registered with another signature key.
    SignatureKeyMismatch,
    /// A package was claimed before: it is never handed out again.
    Reused,
    /// The device would hold more than the cap.
    Full,
    /// The device was removed.
    Removed,
}

/// One device's answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    pub account: AccountId,
    pub device: DeviceId,
    /// `None`: nothing left, not even a last-resort package.
    pub package: Option<Vec<u8>>,
    /// The package is the device's last resort (it stays in the directory).
    pub last_resort: bool,
}

/// Which devices of a claim may hand out an ordinary package (the others answer their
/// last-resort package): asked once per device, in (account, device) order, before its
/// ordinary package is looked for.
pub trait Ordinary: Send + Sync {
    /// Whether the next device of `account` may hand out an ordinary package; `true` counts
    /// one against whatever limit the caller keeps.
    fn take(&self, account: &AccountId) -> bool;
    /// The device `take` allowed held no ordinary package: the one counted goes back.
    fn give_back(&self, account: &AccountId);
}

/// Every device hands out its ordinary packages while it has any.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unlimited;

impl Ordinary for Unlimited {
    fn take(&self, _: &AccountId) -> bool {
        true
    }
    fn give_back(&self, _: &AccountId) {}
}

/// A registered device that is not removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRow {
    pub account: AccountId,
    pub device: DeviceId,
    pub signature_key: Vec<u8>,
    /// When its first upload registered it (ms).
    pub registered_at: i64,
    /// When it last asked how many key packages it holds, on connecting (ms).
    pub last_seen_at: Option<i64>,
    /// The ordinary key packages it holds.
    pub key_packages: u64,
}

fn device_id(s: String) -> Result<DeviceId> {
    DeviceId::new(s.clone()).map_err(|e| StoreError::Corrupt(format!("device {s:?}: {e}")))
}

pub(super) fn device_rows<R: Cols>(rows: &[R]) -> Result<Vec<DeviceRow>> {
    rows.iter()
        .map(|r| {
            Ok(DeviceRow {
                account: account(r.text("account")?)?,
                device: device_id(r.text("device")?)?,
                signature_key: r.blob("signature_key")?,
                registered_at: r.int("registered_at")?,
                last_seen_at: r.opt_int("last_seen_at")?,
                key_packages: crate::store::columns::u64_of(r.int("held")?, "key packages held")?,
            })
        })
        .collect()
}

macro_rules! queries {
    ($conn:ty, begin = $begin:literal, lock = $lock:literal, skip_locked = $skip:literal, any = $any:literal, list = $list:path) => {
        use confab_core::e2ee::{DeviceIdentity, DirectoryAnswer, DirectoryAsk, DirectoryEntry};
        use confab_core::ids::{AccountId, TenantId};
        use sqlx::Connection as _;

        use crate::store::columns::{i64_of, u64_of, Cols};
        use crate::store::devices::{
            device_rows, Claimed, DeviceRow, NewKeyPackage, Ordinary, Upload, UploadRefused,
        };
        use crate::store::Result;

        const DEVICE: &str = "tenant = $1 AND account = $2 AND device = $3";

        async fn held(conn: &mut $conn, device: &DeviceIdentity) -> Result<u64> {
            let row = sqlx::query(&format!(
                "SELECT COUNT(*) AS n FROM key_packages WHERE {DEVICE} AND NOT last_resort"
            ))
            .bind(device.tenant.as_str())
            .bind(device.account.as_str())
            .bind(device.device.as_str())
            .fetch_one(&mut *conn)
            .await?;
            u64_of(row.int("n")?, "key packages held")
        }

        /// The count a device asks for on connecting, which is when it was last seen.
        pub(in crate::store) async fn held_by(
            conn: &mut $conn,
            device: &DeviceIdentity,
            at: i64,
        ) -> Result<u64> {
            sqlx::query(&format!("UPDATE devices SET last_seen_at = $4 WHERE {DEVICE}"))
                .bind(device.tenant.as_str())
                .bind(device.account.as_str())
                .bind(device.device.as_str())
                .bind(at)
                .execute(&mut *conn)
                .await?;
            held(conn, device).await
        }

        async fn insert(
            conn: &mut $conn,
            up: &Upload<'_>,
            package: &NewKeyPackage,
            last_resort: bool,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO key_packages (ref, tenant, account, device, bytes, last_resort, \
                 uploaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (ref) DO NOTHING",
            )
            .bind(&package.reference)
            .bind(up.device.tenant.as_str())
            .bind(up.device.account.as_str())
            .bind(up.device.device.as_str())
            .bind(&package.bytes)
            .bind(last_resort)
            .bind(up.at)
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        async fn claimed_before(conn: &mut $conn, reference: &[u8]) -> Result<bool> {
            let row = sqlx::query("SELECT 1 AS one FROM claimed_key_packages WHERE ref = $1")
                .bind(reference)
                .fetch_optional(&mut *conn)
                .await?;
            Ok(row.is_some())
        }

        /// Stores the upload in one transaction, or nothing and why.
        pub(in crate::store) async fn upload(
            conn: &mut $conn,
            up: &Upload<'_>,
        ) -> Result<std::result::Result<u64, UploadRefused>> {
            let mut tx = conn.begin_with($begin).await?;
            let d = up.device;
            // Trust on first use: the first upload binds the signature key.
            sqlx::query(
                "INSERT INTO devices (tenant, account, device, signature_key, registered_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant, account, device) DO NOTHING",
            )
            .bind(d.tenant.as_str())
            .bind(d.account.as_str())
            .bind(d.device.as_str())
            .bind(up.signature_key)
            .bind(up.at)
            .execute(&mut *tx)
            .await?;
            let row = sqlx::query(&format!(
                "SELECT signature_key, removed_at FROM devices WHERE {DEVICE} {}",
                $lock
            ))
            .bind(d.tenant.as_str())
            .bind(d.account.as_str())
            .bind(d.device.as_str())
            .fetch_one(&mut *tx)
            .await?;
            let refused = if row.opt_int("removed_at")?.is_some() {
                Some(UploadRefused::Removed)
            } else if row.blob("signature_key")? != up.signature_key {
                Some(UploadRefused::SignatureKeyMismatch)
            } else {
                None
            };
            if let Some(refused) = refused {
                tx.rollback().await?;
                return Ok(Err(refused));
            }
            if let Some(last) = up.last_resort {
                sqlx::query(&format!(
                    "DELETE FROM key_packages WHERE {DEVICE} AND last_resort AND ref <> $4"
                ))
                .bind(d.tenant.as_str())
                .bind(d.account.as_str())
                .bind(d.device.as_str())
                .bind(&last.reference)
                .execute(&mut *tx)
                .await?;
                insert(&mut tx, up, last, true).await?;
            }
            for package in up.packages {
                insert(&mut tx, up, package, false).await?;
            }
            // After the inserts: a claim that committed meanwhile is seen here.
            let all = up.packages.iter().chain(up.last_resort);
            for package in all {
                if claimed_before(&mut tx, &package.reference).await? {
                    tx.rollback().await?;
                    return Ok(Err(UploadRefused::Reused));
                }
            }
            let n = held(&mut tx, d).await?;
            if n > up.cap {
                tx.rollback().await?;
                return Ok(Err(UploadRefused::Full));
            }
            sqlx::query(&format!("UPDATE devices SET last_seen_at = $4 WHERE {DEVICE}"))
                .bind(d.tenant.as_str())
                .bind(d.account.as_str())
                .bind(d.device.as_str())
                .bind(up.at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Ok(n))
        }

        async fn listed(
            conn: &mut $conn,
            tenant: &TenantId,
            accounts: &[AccountId],
        ) -> Result<Vec<DeviceRow>> {
            let rows = sqlx::query(&format!(
                "SELECT d.account, d.device, d.signature_key, d.registered_at, d.last_seen_at, \
                 (SELECT COUNT(*) FROM key_packages k WHERE k.tenant = d.tenant \
                 AND k.account = d.account AND k.device = d.device AND NOT k.last_resort) AS held \
                 FROM devices d WHERE d.tenant = $1 AND d.account {} AND d.removed_at IS NULL \
                 ORDER BY d.account, d.device",
                $any
            ))
            .bind(tenant.as_str())
            .bind($list(accounts))
            .fetch_all(&mut *conn)
            .await?;
            let mut out = device_rows(&rows)?;
            // Bytewise order whatever the database's collation.
            out.sort_by(|a, b| (&a.account, &a.device).cmp(&(&b.account, &b.device)));
            Ok(out)
        }

        pub(in crate::store) async fn devices_of(
            conn: &mut $conn,
            tenant: &TenantId,
            accounts: &[AccountId],
        ) -> Result<Vec<DeviceRow>> {
            listed(conn, tenant, accounts).await
        }

        /// The answer to `ask` in one statement, so on one snapshot: the generation, then
        /// the entries of the accounts asked and the devices removed after
        /// `ask.removed_after` (each through its own index; a removal committing meanwhile
        /// has a later generation, seen next time).
        pub(in crate::store) async fn directory_of(
            conn: &mut $conn,
            tenant: &TenantId,
            ask: &DirectoryAsk,
        ) -> Result<DirectoryAnswer> {
            let after = ask
                .removed_after
                .map(|g| i64_of(g, "removal generation"))
                .transpose()?;
            let rows = sqlx::query(&format!(
                "WITH g AS (SELECT COALESCE(MAX(generation), 0) AS generation \
                 FROM directory_generations WHERE tenant = $1) \
                 SELECT g.generation, d.account, d.device, d.signature_key, d.removed_at \
                 FROM g LEFT JOIN (\
                 SELECT account, device, signature_key, removed_at FROM devices \
                 WHERE tenant = $1 AND account {} \
                 UNION ALL \
                 SELECT account, device, signature_key, removed_at FROM devices \
                 WHERE tenant = $1 AND removed_gen > $3) d ON TRUE",
                $any
            ))
            .bind(tenant.as_str())
            .bind($list(&ask.accounts))
            .bind(after)
            .fetch_all(&mut *conn)
            .await?;
            let mut answer = DirectoryAnswer::default();
            for r in &rows {
                answer.generation = u64_of(r.int("generation")?, "removal generation")?;
                let Some(account) = r.opt_text("account")? else {
                    continue;
                };
                answer.entries.push(DirectoryEntry {
                    device: DeviceIdentity::new(
                        tenant.clone(),
                        crate::store::columns::account(account)?,
                        crate::store::devices::device_id(r.text("device")?)?,
                    ),
                    signature_key: r.blob("signature_key")?,
                    removed: r.opt_int("removed_at")?.is_some(),
                });
            }
            Ok(answer)
        }

        pub(in crate::store) async fn removed_of(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
        ) -> Result<Vec<confab_core::ids::DeviceId>> {
            let rows = sqlx::query(
                "SELECT device FROM devices WHERE tenant = $1 AND account = $2 \
                 AND removed_at IS NOT NULL",
            )
            .bind(tenant.as_str())
            .bind(account.as_str())
            .fetch_all(&mut *conn)
            .await?;
            let mut out = rows
                .iter()
                .map(|r| crate::store::devices::device_id(r.text("device")?))
                .collect::<Result<Vec<_>>>()?;
            // Bytewise order whatever the database's collation.
            out.sort();
            Ok(out)
        }

        /// The accounts of `others` but `account` that share a conversation of `tenant`
        /// with `account` in which both are active members, in one query, bytewise sorted.
        pub(in crate::store) async fn co_members(
            conn: &mut $conn,
            tenant: &TenantId,
            account: &AccountId,
            others: &[AccountId],
        ) -> Result<Vec<AccountId>> {
            let rows = sqlx::query(&format!(
                "SELECT DISTINCT o.account FROM memberships m JOIN memberships o \
                 ON o.tenant = m.tenant AND o.conv = m.conv \
                 WHERE m.tenant = $1 AND m.account = $3 AND m.status = 'active' \
                 AND o.account {} AND o.account <> $3 AND o.status = 'active'",
                $any
            ))
            .bind(tenant.as_str())
            .bind($list(others))
            .bind(account.as_str())
            .fetch_all(&mut *conn)
            .await?;
            let mut out = rows
                .iter()
                .map(|r| crate::store::columns::account(r.text("account")?))
                .collect::<Result<Vec<_>>>()?;
            // Bytewise order whatever the database's collation.
            out.sort();
            Ok(out)
        }

        /// One package of every registered device of `accounts`, in one transaction: an
        /// ordinary one where `ordinary` allows it and the device has one, else its last
        /// resort.
        pub(in crate::store) async fn claim(
            conn: &mut $conn,
            tenant: &TenantId,
            accounts: &[AccountId],
            ordinary: &dyn Ordinary,
            at: i64,
        ) -> Result<Vec<Claimed>> {
            let mut tx = conn.begin_with($begin).await?;
            let devices = listed(&mut tx, tenant, accounts).await?;
            let mut out = Vec::with_capacity(devices.len());
            for d in devices {
                let allowed = ordinary.take(&d.account);
                let taken = if allowed {
                    sqlx::query(&format!(
                        "DELETE FROM key_packages WHERE ref = (SELECT ref FROM key_packages \
                         WHERE {DEVICE} AND NOT last_resort ORDER BY uploaded_at, ref LIMIT 1 \
                         {}) RETURNING ref, bytes",
                        $skip
                    ))
                    .bind(tenant.as_str())
                    .bind(d.account.as_str())
                    .bind(d.device.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                } else {
                    None
                };
                if allowed && taken.is_none() {
                    ordinary.give_back(&d.account);
                }
                let (package, last_resort) = match taken {
                    Some(row) => {
                        sqlx::query(
                            "INSERT INTO claimed_key_packages (ref, claimed_at) VALUES ($1, $2) \
                             ON CONFLICT (ref) DO NOTHING",
                        )
                        .bind(row.blob("ref")?)
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                        (Some(row.blob("bytes")?), false)
                    }
                    None => {
                        let last = sqlx::query(&format!(
                            "SELECT bytes FROM key_packages WHERE {DEVICE} AND last_resort \
                             ORDER BY uploaded_at DESC LIMIT 1"
                        ))
                        .bind(tenant.as_str())
                        .bind(d.account.as_str())
                        .bind(d.device.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                        match last {
                            Some(row) => (Some(row.blob("bytes")?), true),
                            None => (None, false),
                        }
                    }
                };
                out.push(Claimed {
                    account: d.account,
                    device: d.device,
                    package,
                    last_resort,
                });
            }
            tx.commit().await?;
            Ok(out)
        }

        /// Marks the device removed (its first removal time stays) at its tenant's next
        /// removal generation, and drops its packages; `false` if it was never registered.
        /// The device's row is locked before the tenant's generation row, always in that
        /// order; the generation row stays locked until the commit, so generations commit in
        /// their order.
        pub(in crate::store) async fn remove(
            conn: &mut $conn,
            device: &DeviceIdentity,
            at: i64,
        ) -> Result<bool> {
            let mut tx = conn.begin_with($begin).await?;
            let row = sqlx::query(&format!(
                "SELECT removed_at FROM devices WHERE {DEVICE} {}",
                $lock
            ))
            .bind(device.tenant.as_str())
            .bind(device.account.as_str())
            .bind(device.device.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let registered = row.is_some();
            if let Some(row) = row {
                if row.opt_int("removed_at")?.is_none() {
                    let generation = sqlx::query(
                        "INSERT INTO directory_generations (tenant, generation) VALUES ($1, 1) \
                         ON CONFLICT (tenant) DO UPDATE \
                         SET generation = directory_generations.generation + 1 \
                         RETURNING generation",
                    )
                    .bind(device.tenant.as_str())
                    .fetch_one(&mut *tx)
                    .await?
                    .int("generation")?;
                    sqlx::query(&format!(
                        "UPDATE devices SET removed_at = $4, removed_gen = $5 WHERE {DEVICE}"
                    ))
                    .bind(device.tenant.as_str())
                    .bind(device.account.as_str())
                    .bind(device.device.as_str())
                    .bind(at)
                    .bind(generation)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            sqlx::query(&format!("DELETE FROM key_packages WHERE {DEVICE}"))
                .bind(device.tenant.as_str())
                .bind(device.account.as_str())
                .bind(device.device.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(registered)
        }
    };
}

fn pg_list(accounts: &[AccountId]) -> Vec<String> {
    accounts.iter().map(|a| a.as_str().to_owned()).collect()
}

fn lite_list(accounts: &[AccountId]) -> String {
    serde_json::to_string(&pg_list(accounts)).unwrap_or_else(|_| "[]".to_owned())
}

pub(super) mod pg {
    queries!(
        sqlx::PgConnection,
        begin = "BEGIN",
        lock = "FOR UPDATE",
        skip_locked = "FOR UPDATE SKIP LOCKED",
        any = "= ANY($2::text[])",
        list = super::pg_list
    );
}

pub(super) mod lite {
    queries!(
        sqlx::SqliteConnection,
        // A write from the start: a read upgraded later fails at once when another process
        // writes (the busy timeout does not cover an upgrade).
        begin = "BEGIN IMMEDIATE",
        lock = "",
        skip_locked = "",
        any = "IN (SELECT value FROM json_each($2))",
        list = super::lite_list
    );
}
