//! Attacks on the MLS directory (docs/E2EE.md, "Devices and key packages"). The in-memory
//! hub keeps only what the Delivery Service checks leaves against (who is registered with
//! which key); uploads, claims and lists are the server's, in the store, so these are
//! wire-only cases of the attack suite: they run on the real server with SQLite and with Postgres. Each is
//! refused with its code, names its request's id, is not fatal, and leaves the directory as
//! it was: the victim's devices as anyone lists them and the count its own device reads.
//! Claims by an account that shares no active conversation with the victim (a stranger, a
//! former member) get its last-resort package or `rate_limited`, never an ordinary one.

use std::time::Instant;

use confab_core::doc::write;
use confab_core::e2ee::{Device as MlsDevice, DeviceIdentity, MAX_KEY_PACKAGE_BYTES};
use confab_core::ids::{AccountId, DeviceId, TenantId};
use confab_core::model::conversation::{ConvKind, MemberStatus, Role};
use confab_core::protocol::{
    ClientFrame, ServerFrame, CLAIMS_PER_CONNECTION, CLAIMS_WINDOW_MS, KEY_PACKAGES_PER_UPLOAD,
};
use confab_e2e::client::WAIT;
use confab_e2e::{device_token, Client, Device};
use confab_testkit::attack::fixture::create;
use confab_testkit::attack::Lab;
use confab_testkit::ids::{acc, conv_doc};
use serde_bytes::ByteBuf;

use super::wire::{now, WireLab};

fn mls(tenant: &str, account: &str, device: &str) -> MlsDevice {
    MlsDevice::new(DeviceIdentity::new(
        TenantId::new(tenant).unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new(device).unwrap(),
    ))
    .unwrap()
}

struct Conn {
    client: Client,
    next: u64,
}

impl Conn {
    async fn open(lab: &WireLab, tenant: &str, account: &str, device: &str) -> Conn {
        let token = device_token(tenant, account, device, 3600);
        Conn {
            client: Client::connect_device(&lab.url(), &token, device)
                .await
                .unwrap(),
            next: 0,
        }
    }

    async fn ask(&mut self, make: impl FnOnce(u64) -> ClientFrame) -> (u64, ServerFrame) {
        self.next += 1;
        let id = self.next;
        (id, self.client.request(&make(id)).await.unwrap())
    }

    async fn upload(&mut self, packages: Vec<Vec<u8>>) -> (u64, ServerFrame) {
        self.ask(|id| ClientFrame::UploadKeyPackages {
            id,
            packages: packages.into_iter().map(ByteBuf::from).collect(),
            last_resort: None,
        })
        .await
    }

    async fn claim(&mut self, accounts: &[&str]) -> (u64, ServerFrame) {
        let accounts = accounts.iter().map(|a| (*a).to_owned()).collect();
        self.ask(|id| ClientFrame::ClaimKeyPackages { id, accounts })
            .await
    }
}

/// What the directory holds of a victim: its devices as another account lists them, and
/// the count its own device reads.
#[derive(Debug, PartialEq)]
struct Held {
    devices: ServerFrame,
    count: ServerFrame,
}

async fn held(lab: &WireLab, account: &str, device: &str) -> Held {
    let mut lister = Conn::open(lab, "acme", "dir-lister", "l1").await;
    let (_, mut devices) = lister
        .ask(|id| ClientFrame::ListDevices {
            id,
            account: account.to_owned(),
        })
        .await;
    // The device's own count (below, and in the `held` before) marks it seen: a change of
    // this check, not of an attack.
    if let ServerFrame::Devices { devices, .. } = &mut devices {
        for entry in devices {
            entry.last_seen_at = None;
        }
    }
    let mut own = Conn::open(lab, "acme", account, device).await;
    let (_, count) = own
        .ask(|id| ClientFrame::UploadKeyPackages {
            id,
            packages: Vec::new(),
            last_resort: None,
        })
        .await;
    Held { devices, count }
}

fn refused(answer: (u64, ServerFrame), code: &str) {
    match answer.1 {
        ServerFrame::Error {
            code: got,
            fatal,
            id,
            message,
            ..
        } => {
            assert_eq!(got, code, "{message}");
            assert!(!fatal, "a refused request is not fatal");
            assert_eq!(id, Some(answer.0), "the error names the request");
            assert!(!message.is_empty());
        }
        other => panic!("expected {code}, got {other:?}"),
    }
}

/// A registered victim with two packages, and its own connection.
async fn victim(lab: &WireLab, account: &str) -> (MlsDevice, Conn) {
    let keys = mls("acme", account, "d1");
    let mut conn = Conn::open(lab, "acme", account, "d1").await;
    let packages = (0..2).map(|_| keys.key_package(false).unwrap()).collect();
    assert!(matches!(
        conn.upload(packages).await.1,
        ServerFrame::KeyPackagesStored { held: 2, .. }
    ));
    (keys, conn)
}

/// Key packages naming another account, or another device of one's own account.
pub async fn key_packages_for_someone_else(lab: &mut WireLab) {
    let (_, _victim) = victim(lab, "dir-v1").await;
    let before = held(lab, "dir-v1", "d1").await;
    let mut mallory = Conn::open(lab, "acme", "dir-mallory", "d1").await;
    // Alice's device name, made by mallory: it names dir-v1, not the uploader.
    let forged = mls("acme", "dir-v1", "d1").key_package(false).unwrap();
    refused(mallory.upload(vec![forged]).await, "mls_wrong_identity");
    // Another device of mallory's own account, uploaded from d1.
    let other = mls("acme", "dir-mallory", "d2").key_package(false).unwrap();
    refused(mallory.upload(vec![other]).await, "mls_wrong_identity");
    // Another tenant's identity.
    let evil = mls("evil", "dir-mallory", "d1").key_package(false).unwrap();
    refused(mallory.upload(vec![evil]).await, "mls_wrong_identity");
    assert_eq!(held(lab, "dir-v1", "d1").await, before);
    let (_, listed) = mallory
        .ask(|id| ClientFrame::ListDevices {
            id,
            account: "dir-mallory".into(),
        })
        .await;
    assert!(
        matches!(&listed, ServerFrame::Devices { devices, .. } if devices.is_empty()),
        "nothing registered: {listed:?}"
    );
}

/// A device whose signature key changed (a thief with the device's name and token).
pub async fn a_changed_signature_key(lab: &mut WireLab) {
    let (_, _victim) = victim(lab, "dir-v2").await;
    let before = held(lab, "dir-v2", "d1").await;
    let mut thief = Conn::open(lab, "acme", "dir-v2", "d1").await;
    let other_keys = mls("acme", "dir-v2", "d1");
    refused(
        thief
            .upload(vec![other_keys.key_package(false).unwrap()])
            .await,
        "mls_signature_key_mismatch",
    );
    assert_eq!(held(lab, "dir-v2", "d1").await, before);
}

/// A claimed key package offered again, alone and beside a fresh one.
pub async fn a_claimed_key_package_offered_again(lab: &mut WireLab) {
    let keys = mls("acme", "dir-v3", "d1");
    let mut own = Conn::open(lab, "acme", "dir-v3", "d1").await;
    let package = keys.key_package(false).unwrap();
    assert!(matches!(
        own.upload(vec![package.clone()]).await.1,
        ServerFrame::KeyPackagesStored { held: 1, .. }
    ));
    // The account's other device claims it (a stranger would get none: no last resort).
    let mut claimer = Conn::open(lab, "acme", "dir-v3", "d2").await;
    match claimer.claim(&["dir-v3"]).await.1 {
        ServerFrame::KeyPackages { devices, .. } => {
            assert_eq!(
                devices[0].package.as_deref().map(|p| &p[..]),
                Some(&package[..])
            );
        }
        other => panic!("{other:?}"),
    }
    let before = held(lab, "dir-v3", "d1").await;
    refused(
        own.upload(vec![package.clone()]).await,
        "mls_key_package_reused",
    );
    let fresh = keys.key_package(false).unwrap();
    refused(
        own.upload(vec![fresh, package]).await,
        "mls_key_package_reused",
    );
    assert_eq!(held(lab, "dir-v3", "d1").await, before);
}

/// Garbage, an oversized package, a last-resort package in the ordinary list, too many
/// packages in one frame.
pub async fn garbage_and_oversized_key_packages(lab: &mut WireLab) {
    let (keys, mut own) = victim(lab, "dir-v4").await;
    let before = held(lab, "dir-v4", "d1").await;
    refused(
        own.upload(vec![vec![0xde, 0xad, 0xbe, 0xef]]).await,
        "mls_malformed",
    );
    refused(own.upload(vec![Vec::new()]).await, "mls_malformed");
    refused(
        own.upload(vec![vec![0u8; MAX_KEY_PACKAGE_BYTES + 1]]).await,
        "mls_too_large",
    );
    // A good package after a bad one: nothing of the frame is stored.
    let good = keys.key_package(false).unwrap();
    refused(own.upload(vec![good, vec![1, 2, 3]]).await, "mls_malformed");
    let last = keys.key_package(true).unwrap();
    refused(own.upload(vec![last]).await, "mls_invalid");
    let many = vec![vec![0u8; 4]; KEY_PACKAGES_PER_UPLOAD + 1];
    refused(own.upload(many).await, "too_many_key_packages");
    assert_eq!(held(lab, "dir-v4", "d1").await, before);
}

/// A claim from another tenant reaches nothing of acme; a claim naming a tenant in the
/// account id is not an id.
pub async fn a_claim_across_tenants(lab: &mut WireLab) {
    let (_, _victim) = victim(lab, "dir-v5").await;
    let before = held(lab, "dir-v5", "d1").await;
    let mut evil = Conn::open(lab, "evil", "dir-mallory", "e1").await;
    match evil.claim(&["dir-v5"]).await.1 {
        ServerFrame::KeyPackages { devices, .. } => assert!(devices.is_empty(), "{devices:?}"),
        other => panic!("{other:?}"),
    }
    refused(evil.claim(&["acme/dir-v5"]).await, "invalid_id");
    let (id, listed) = evil
        .ask(|id| ClientFrame::ListDevices {
            id,
            account: "dir-v5".into(),
        })
        .await;
    assert_eq!(
        listed,
        ServerFrame::Devices {
            id,
            account: "dir-v5".into(),
            devices: Vec::new(),
            removed: Vec::new(),
        }
    );
    assert_eq!(held(lab, "dir-v5", "d1").await, before);
}

/// A registered victim with `n` ordinary packages and, if `last`, a last-resort one (its
/// bytes).
async fn victim_with(lab: &WireLab, account: &str, n: usize, last: bool) -> Option<Vec<u8>> {
    let keys = mls("acme", account, "d1");
    let mut conn = Conn::open(lab, "acme", account, "d1").await;
    let last = last.then(|| keys.key_package(true).unwrap());
    let packages = (0..n)
        .map(|_| ByteBuf::from(keys.key_package(false).unwrap()))
        .collect();
    let (_, stored) = conn
        .ask(|id| ClientFrame::UploadKeyPackages {
            id,
            packages,
            last_resort: last.clone().map(ByteBuf::from),
        })
        .await;
    assert!(
        matches!(stored, ServerFrame::KeyPackagesStored { held, .. } if held == n as u64),
        "{stored:?}"
    );
    last
}

/// One stranger's answer to a claim of the victim: its last-resort package, or
/// `rate_limited` naming the request with `retry_after_ms` (not fatal). `true`: answered.
fn last_resort_or_limited(frame: &ServerFrame, victim: &str, last: &[u8]) -> bool {
    match frame {
        ServerFrame::KeyPackages { devices, .. } => {
            assert_eq!(devices.len(), 1, "{devices:?}");
            assert_eq!(
                (devices[0].account.as_str(), devices[0].device.as_str()),
                (victim, "d1")
            );
            assert_eq!(
                devices[0].package.as_deref().map(|p| &p[..]),
                Some(last),
                "a stranger gets the last resort only"
            );
            true
        }
        ServerFrame::Error {
            code,
            fatal,
            retry_after_ms,
            ..
        } => {
            assert_eq!(code, "rate_limited");
            assert!(!fatal, "a refused claim is not fatal");
            let wait = retry_after_ms.expect("retry_after_ms");
            assert!(
                (1..=CLAIMS_WINDOW_MS.unsigned_abs()).contains(&wait),
                "{wait}"
            );
            false
        }
        other => panic!("{other:?}"),
    }
}

/// A stranger floods claims of the victim (300 frames as fast as it can write them, then
/// 20 more claims on each of five more connections): every answer is the last-resort
/// package or `rate_limited`, the connection stays open, and the victim's ordinary packages
/// are all still there.
pub async fn a_strangers_flood_of_claims(lab: &mut WireLab) {
    let last = victim_with(lab, "dir-v6", 5, true)
        .await
        .expect("a last resort");
    let before = held(lab, "dir-v6", "d1").await;
    let mut mallory = Conn::open(lab, "acme", "dir-drainer", "m1").await;
    let started = Instant::now();
    for id in 1..=300u64 {
        mallory
            .client
            .send(&ClientFrame::ClaimKeyPackages {
                id,
                accounts: vec!["dir-v6".into()],
            })
            .await
            .unwrap();
    }
    mallory.next = 300;
    let mut ids = std::collections::BTreeSet::new();
    let mut answered = 0;
    for _ in 0..300 {
        let frame = mallory.client.recv(WAIT).await.unwrap();
        let id = match &frame {
            ServerFrame::KeyPackages { id, .. } => Some(*id),
            ServerFrame::Error { id, .. } => *id,
            _ => None,
        };
        assert!(ids.insert(id.expect("names its claim")), "answered twice");
        if last_resort_or_limited(&frame, "dir-v6", &last) {
            answered += 1;
        }
    }
    assert_eq!(ids.len(), 300);
    let windows = started.elapsed().as_millis() / u128::from(CLAIMS_WINDOW_MS.unsigned_abs());
    let most = CLAIMS_PER_CONNECTION * (usize::try_from(windows).unwrap() + 1);
    assert!(
        (1..=most).contains(&answered),
        "{answered} answered, at most {most}"
    );
    // The connection is still open.
    let (_, listed) = mallory
        .ask(|id| ClientFrame::ListDevices {
            id,
            account: "dir-v6".into(),
        })
        .await;
    assert!(matches!(listed, ServerFrame::Devices { .. }), "{listed:?}");
    // More connections earn more answers, never an ordinary package.
    for i in 0..5 {
        let mut more = Conn::open(lab, "acme", "dir-drainer", &format!("m{}", i + 2)).await;
        for _ in 0..CLAIMS_PER_CONNECTION {
            let (_, answer) = more.claim(&["dir-v6", "dir-drainer"]).await;
            last_resort_or_limited(&answer, "dir-v6", &last);
        }
    }
    assert_eq!(held(lab, "dir-v6", "d1").await, before);
}

/// Two members of the victim's group claim ordinary packages; then one leaves and the
/// other is removed: each is a stranger again, and the victim's device, which has no last
/// resort, answers them `package: null` and keeps what it holds.
pub async fn a_former_member_is_a_stranger_again(lab: &mut WireLab) {
    victim_with(lab, "dir-v7", 4, false).await;
    let mut owner = Device::new("dir-v7", 1);
    let mut leaver = Device::new("dir-ex1", 1);
    let mut removed = Device::new("dir-ex2", 1);
    let room = create(
        lab,
        "dir-room",
        ConvKind::Group,
        &mut owner,
        &mut [(&mut leaver, Role::Member), (&mut removed, Role::Member)],
        |_| {},
    )
    .await;
    let cd = conv_doc(&room);
    let mut ex1 = Conn::open(lab, "acme", "dir-ex1", "d1").await;
    let mut ex2 = Conn::open(lab, "acme", "dir-ex2", "d1").await;
    for conn in [&mut ex1, &mut ex2] {
        match conn.claim(&["dir-v7"]).await.1 {
            ServerFrame::KeyPackages { devices, .. } => {
                assert!(devices[0].package.is_some(), "a member's ordinary package")
            }
            other => panic!("{other:?}"),
        }
    }
    let t = now();
    let leave = leaver
        .write(&cd, |doc, tag| {
            write::set_member_status(doc, tag, t, &acc("dir-ex1"), MemberStatus::Left)
        })
        .unwrap();
    lab.accept(&mut leaver, &cd, leave).await;
    let removal = owner
        .write(&cd, |doc, tag| {
            write::set_member_status(doc, tag, t, &acc("dir-ex2"), MemberStatus::Removed)
        })
        .unwrap();
    lab.accept(&mut owner, &cd, removal).await;
    let before = held(lab, "dir-v7", "d1").await;
    assert!(
        matches!(before.count, ServerFrame::KeyPackagesStored { held: 2, .. }),
        "{before:?}"
    );
    for conn in [&mut ex1, &mut ex2] {
        for _ in 0..3 {
            match conn.claim(&["dir-v7"]).await.1 {
                ServerFrame::KeyPackages { devices, .. } => {
                    assert_eq!(devices.len(), 1);
                    assert_eq!(devices[0].package, None, "a stranger's: none");
                }
                other => panic!("{other:?}"),
            }
        }
    }
    assert_eq!(held(lab, "dir-v7", "d1").await, before);
}
