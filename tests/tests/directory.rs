//! The MLS directory over the wire (docs/E2EE.md, "Devices and key packages"), on the real
//! server binary with SQLite and Postgres:
//!
//! - `upload_and_claim_*`: two devices of alice upload real key packages; bob, a stranger,
//!   gets only the last resort and takes nothing; once he shares a conversation with alice
//!   his claims get one package per device, each ordinary one once, the last resort when
//!   the ordinary ones are gone (again and again), "none left" for a device without any;
//!   listing, counts and removal.
//! - `claims_by_relation_*`: the claim rule (docs/E2EE.md, "Claim"): the account's own other
//!   device and co-members get ordinary packages, up to `CLAIMED_PER_ACCOUNT` of the account
//!   whoever claims, then last-resort ones; a stranger gets last-resort ones only; a
//!   connection's claims beyond `CLAIMS_PER_CONNECTION` are `rate_limited` with
//!   `retry_after_ms`, and after that wait it claims again.
//! - `concurrent_claimers_on_postgres`: two connections claim the same device's packages
//!   at once: no package twice.
//! - `two_nodes_on_one_postgres`: claims through two server nodes on one database at once:
//!   no package twice, and a device registered through one node is listed by the other.
//! - `hello_device_against_the_tokens_device_claim`: a token naming a device is good only
//!   for a hello naming that device.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;

use confab_core::e2ee::ds::check_key_package;
use confab_core::e2ee::{Device as MlsDevice, DeviceIdentity};
use confab_core::ids::{AccountId, DeviceId, TenantId};
use confab_core::protocol::{
    ClaimedPackage, ClientFrame, ServerFrame, CLAIMED_PER_ACCOUNT, CLAIMS_PER_CONNECTION,
    CLAIMS_WINDOW_MS,
};
use confab_e2e::{device_token, token, Backend, Client, Device, TestServer};
use confab_testkit::pg::{self, Template};
use serde_bytes::ByteBuf;

use common::{assert_acked, create_group};

/// One device: its MLS keys and a connection that names it in its hello.
struct Dev {
    mls: MlsDevice,
    client: Client,
    next: u64,
}

fn identity(tenant: &str, account: &str, device: &str) -> DeviceIdentity {
    DeviceIdentity::new(
        TenantId::new(tenant).unwrap(),
        AccountId::new(account).unwrap(),
        DeviceId::new(device).unwrap(),
    )
}

impl Dev {
    async fn connect(url: &str, tenant: &str, account: &str, device: &str) -> Dev {
        let token = device_token(tenant, account, device, 3600);
        Dev {
            mls: MlsDevice::new(identity(tenant, account, device)).unwrap(),
            client: Client::connect_device(url, &token, device).await.unwrap(),
            next: 0,
        }
    }

    fn id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    fn packages(&self, n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|_| self.mls.key_package(false).unwrap())
            .collect()
    }

    async fn upload(&mut self, packages: &[Vec<u8>], last: Option<Vec<u8>>) -> ServerFrame {
        let frame = ClientFrame::UploadKeyPackages {
            id: self.id(),
            packages: packages.iter().cloned().map(ByteBuf::from).collect(),
            last_resort: last.map(ByteBuf::from),
        };
        self.client.request(&frame).await.unwrap()
    }

    async fn claim(&mut self, accounts: &[&str]) -> Vec<ClaimedPackage> {
        match self.claim_answer(accounts).await {
            ServerFrame::KeyPackages { devices, .. } => devices,
            other => panic!("expected key_packages, got {other:?}"),
        }
    }

    async fn claim_answer(&mut self, accounts: &[&str]) -> ServerFrame {
        let frame = ClientFrame::ClaimKeyPackages {
            id: self.id(),
            accounts: accounts.iter().map(|a| (*a).to_owned()).collect(),
        };
        self.client.request(&frame).await.unwrap()
    }

    /// How many ordinary packages this device holds (an upload of none asks).
    async fn held(&mut self) -> u64 {
        held(&self.upload(&[], None).await)
    }

    async fn devices(&mut self, account: &str) -> Vec<(String, Vec<u8>)> {
        let frame = ClientFrame::ListDevices {
            id: self.id(),
            account: account.to_owned(),
        };
        match self.client.request(&frame).await.unwrap() {
            ServerFrame::Devices { devices, .. } => devices
                .into_iter()
                .map(|d| (d.device, d.signature_key.into_vec()))
                .collect(),
            other => panic!("expected devices, got {other:?}"),
        }
    }
}

/// `GET path` as a service account (or bob): (status, body).
async fn rest_get(server: &TestServer, path: &str, service: bool) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bearer = token("acme", if service { "svc" } else { "bob" }, service, 3600);
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.0\r\nAuthorization: Bearer {bearer}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

fn held(frame: &ServerFrame) -> u64 {
    match frame {
        ServerFrame::KeyPackagesStored { held, .. } => *held,
        other => panic!("expected key_packages_stored, got {other:?}"),
    }
}

/// Group `id` made by `owner` (who connects to `url` for it) with `members`: they share it
/// as active members once this returns.
async fn share(url: &str, owner: &str, id: &str, members: &[&str]) {
    let mut dev = Device::new(owner, 1);
    let mut client = Client::connect(url, &token("acme", owner, false, 3600))
        .await
        .unwrap();
    let (doc, create) = create_group(&mut dev, id, members);
    assert_acked(&client.submit(&doc, &[create]).await.unwrap());
    client.close().await;
}

/// The package a claim handed out for `account/device`, checked to name that device.
fn package_of(claimed: &[ClaimedPackage], account: &str, device: &str) -> Option<Vec<u8>> {
    let entry = claimed
        .iter()
        .find(|c| c.account == account && c.device == device)
        .unwrap_or_else(|| panic!("{account}/{device} not in {claimed:?}"));
    entry.package.as_ref().map(|p| {
        check_key_package(p, &identity("acme", account, device)).expect("a valid key package");
        p.to_vec()
    })
}

async fn upload_and_claim(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let url = server.ws_url();
    let mut phone = Dev::connect(&url, "acme", "alice", "phone").await;
    let mut laptop = Dev::connect(&url, "acme", "alice", "laptop").await;
    let mut bob = Dev::connect(&url, "acme", "bob", "tablet").await;

    let phone_packages = phone.packages(3);
    assert_eq!(held(&phone.upload(&phone_packages, None).await), 3);
    let last = laptop.mls.key_package(true).unwrap();
    let laptop_packages = laptop.packages(1);
    assert_eq!(
        held(&laptop.upload(&laptop_packages, Some(last.clone())).await),
        1
    );
    // Listed with the keys they carry, in device order.
    assert_eq!(
        bob.devices("alice").await,
        vec![
            ("laptop".to_owned(), laptop.mls.signature_key().to_vec()),
            ("phone".to_owned(), phone.mls.signature_key().to_vec()),
        ]
    );
    assert!(bob.devices("carol").await.is_empty());
    // REST, for the tenant's services: the same list, keys in hex; users are refused.
    let (status, body) = rest_get(&server, "/v1/accounts/alice/devices", true).await;
    assert_eq!(status, 200, "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["account"], "alice");
    let devices = listed["devices"].as_array().unwrap();
    let expected = [("laptop", &laptop, 1), ("phone", &phone, 3)];
    assert_eq!(devices.len(), expected.len(), "{body}");
    for (d, (name, dev, held)) in devices.iter().zip(expected) {
        assert_eq!(d["device"], name);
        assert_eq!(d["signature_key"], hex::encode(dev.mls.signature_key()));
        // Registered and last seen by the upload; the ordinary packages it holds.
        assert!(d["registered_at"].as_str().unwrap().ends_with('Z'), "{d}");
        assert_eq!(d["last_seen_at"], d["registered_at"], "{d}");
        assert_eq!(d["key_packages"], held, "{d}");
    }
    let (status, body) = rest_get(&server, "/v1/accounts/alice/devices", false).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("service_only"), "{body}");

    // Bob shares no conversation with alice: the laptop's last resort, none of the phone,
    // and nothing taken.
    for _ in 0..3 {
        let claimed = bob.claim(&["alice"]).await;
        assert_eq!(package_of(&claimed, "alice", "laptop"), Some(last.clone()));
        assert_eq!(package_of(&claimed, "alice", "phone"), None);
    }
    assert_eq!((phone.held().await, laptop.held().await), (3, 1));

    // Now they share one. One package per device per claim; none twice; then the last
    // resort, again and again; the phone, without one, has none left.
    share(&url, "alice", "dir-shared", &["bob"]).await;
    let mut seen = BTreeSet::new();
    for round in 0..5 {
        let claimed = bob.claim(&["alice", "carol", "alice"]).await;
        assert_eq!(claimed.len(), 2, "one entry per device: {claimed:?}");
        let from_phone = package_of(&claimed, "alice", "phone");
        let from_laptop = package_of(&claimed, "alice", "laptop").expect("laptop");
        match round {
            0..=2 => {
                let p = from_phone.expect("phone");
                assert!(phone_packages.contains(&p));
                assert!(seen.insert(p), "a package handed out twice");
            }
            _ => assert_eq!(from_phone, None, "none left"),
        }
        if round == 0 {
            assert_eq!(from_laptop, laptop_packages[0]);
        } else {
            assert_eq!(from_laptop, last, "the last resort, which stays");
        }
    }
    // The owner tops up: an empty upload answers its count.
    assert_eq!(held(&phone.upload(&[], None).await), 0);
    let more = phone.packages(2);
    assert_eq!(held(&phone.upload(&more, None).await), 2);

    // Removal by the account itself: no longer listed nor claimed, uploads refused.
    let id = laptop.id();
    let answer = laptop
        .client
        .request(&ClientFrame::RemoveDevice {
            id,
            device: "phone".into(),
        })
        .await
        .unwrap();
    assert_eq!(answer, ServerFrame::DeviceRemoved { id });
    let claimed = bob.claim(&["alice"]).await;
    assert_eq!(
        claimed
            .iter()
            .map(|c| c.device.as_str())
            .collect::<Vec<_>>(),
        ["laptop"]
    );
    assert_eq!(bob.devices("alice").await.len(), 1);
    let again = phone.packages(1);
    match phone.upload(&again, None).await {
        ServerFrame::Error {
            code, fatal, id, ..
        } => {
            assert_eq!(code, "device_removed");
            assert!(!fatal);
            assert!(id.is_some());
        }
        other => panic!("{other:?}"),
    }
    // Bob may not remove alice's devices: he names his own account's, which he has none of.
    let id = bob.id();
    match bob
        .client
        .request(&ClientFrame::RemoveDevice {
            id,
            device: "laptop".into(),
        })
        .await
        .unwrap()
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, "unknown_device"),
        other => panic!("{other:?}"),
    }
    assert_eq!(bob.devices("alice").await.len(), 1);
}

#[tokio::test]
async fn upload_and_claim_on_sqlite() {
    upload_and_claim(Backend::Sqlite).await;
}

#[tokio::test]
async fn upload_and_claim_on_postgres() {
    upload_and_claim(Backend::Postgres).await;
}

/// The rule of a claim's ordinary packages, and the claim limits, on one server.
async fn claims_by_relation(backend: Backend) {
    let server = TestServer::start(backend).await.unwrap();
    let url = server.ws_url();
    let mut phone = Dev::connect(&url, "acme", "alice", "phone").await;
    let mut laptop = Dev::connect(&url, "acme", "alice", "laptop").await;
    let mut lasts = Vec::new();
    for dev in [&mut phone, &mut laptop] {
        let packages = dev.packages(20);
        let last = dev.mls.key_package(true).unwrap();
        assert_eq!(held(&dev.upload(&packages, Some(last.clone())).await), 20);
        lasts.push(last);
    }
    let (phone_last, laptop_last) = (lasts[0].clone(), lasts[1].clone());
    let mut carol_dev = Dev::connect(&url, "acme", "carol", "c1").await;
    let carol_packages = carol_dev.packages(2);
    assert_eq!(held(&carol_dev.upload(&carol_packages, None).await), 2);
    share(&url, "alice", "dir-relation", &["bob", "carol"]).await;
    let ordinary = |claimed: &[ClaimedPackage], device: &str, last: &[u8]| {
        let p = package_of(claimed, "alice", device).expect("a package");
        assert_ne!(
            p, last,
            "{device}: an ordinary package, not the last resort"
        );
    };
    let last_resort = |claimed: &[ClaimedPackage]| {
        assert_eq!(
            package_of(claimed, "alice", "phone"),
            Some(phone_last.clone())
        );
        assert_eq!(
            package_of(claimed, "alice", "laptop"),
            Some(laptop_last.clone())
        );
    };

    // The account's own other device (registered or not): ordinary packages.
    let mut tablet = Dev::connect(&url, "acme", "alice", "tablet").await;
    let claimed = tablet.claim(&["alice"]).await;
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    ordinary(&claimed, "phone", &phone_last);
    ordinary(&claimed, "laptop", &laptop_last);
    assert_eq!((phone.held().await, laptop.held().await), (19, 19));

    // A stranger: the last resorts, whatever it asks and however often; nothing taken.
    let mut dave = Dev::connect(&url, "acme", "dave", "d1").await;
    for _ in 0..5 {
        last_resort(&dave.claim(&["alice", "dave", "alice"]).await);
    }
    assert_eq!((phone.held().await, laptop.held().await), (19, 19));

    // A co-member: ordinary packages until the account handed out CLAIMED_PER_ACCOUNT in
    // the window (2 of them went to the tablet), then the last resorts.
    let mut bob = Dev::connect(&url, "acme", "bob", "b1").await;
    let rounds = (CLAIMED_PER_ACCOUNT - 2) / 2;
    let mut seen = BTreeSet::new();
    for _ in 0..rounds {
        let claimed = bob.claim(&["alice"]).await;
        ordinary(&claimed, "phone", &phone_last);
        ordinary(&claimed, "laptop", &laptop_last);
        for c in claimed {
            assert!(
                seen.insert(c.package.unwrap().into_vec()),
                "handed out twice"
            );
        }
    }
    let left = 19 - u64::try_from(rounds).unwrap();
    assert_eq!((phone.held().await, laptop.held().await), (left, left));
    last_resort(&bob.claim(&["alice"]).await);
    // Whoever claims: another co-member, the account's own device. Another account's
    // packages in the same claim are its own share.
    let mut carol = Dev::connect(&url, "acme", "carol", "c2").await;
    let claimed = carol.claim(&["alice", "carol"]).await;
    last_resort(&claimed);
    let own = package_of(&claimed, "carol", "c1").expect("carol's own");
    assert!(carol_packages.contains(&own));
    last_resort(&tablet.claim(&["alice"]).await);
    let claimed = bob.claim(&["alice", "carol"]).await;
    last_resort(&claimed);
    let hers = package_of(&claimed, "carol", "c1").expect("carol's, to a co-member");
    assert!(carol_packages.contains(&hers) && hers != own);
    assert_eq!((phone.held().await, laptop.held().await), (left, left));

    // A connection's claims beyond CLAIMS_PER_CONNECTION in the window: `rate_limited`
    // with the request's id and `retry_after_ms`, not fatal, nothing taken.
    let mut erin = Dev::connect(&url, "acme", "erin", "e1").await;
    let started = std::time::Instant::now();
    let mut answered = 0;
    let mut retry = None;
    for _ in 0..CLAIMS_PER_CONNECTION + 5 {
        let id = erin.next + 1;
        match erin.claim_answer(&["alice"]).await {
            ServerFrame::KeyPackages { devices, .. } => {
                last_resort(&devices);
                answered += 1;
            }
            ServerFrame::Error {
                code,
                fatal,
                id: named,
                retry_after_ms,
                ..
            } => {
                assert_eq!(code, "rate_limited");
                assert!(!fatal);
                assert_eq!(named, Some(id));
                let wait = retry_after_ms.expect("retry_after_ms");
                assert!(
                    (1..=CLAIMS_WINDOW_MS.unsigned_abs()).contains(&wait),
                    "{wait}"
                );
                retry = Some(wait);
            }
            other => panic!("{other:?}"),
        }
    }
    let window = u128::from(CLAIMS_WINDOW_MS.unsigned_abs());
    if started.elapsed().as_millis() < window {
        assert_eq!(answered, CLAIMS_PER_CONNECTION, "the rest are refused");
    }
    let wait = retry.expect("some claims are refused");
    // Still open, and other requests go on.
    assert_eq!(erin.devices("alice").await.len(), 2);
    // After the wait, the connection claims again.
    tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
    last_resort(&erin.claim(&["alice"]).await);
    assert_eq!((phone.held().await, laptop.held().await), (left, left));
}

#[tokio::test]
async fn claims_by_relation_on_sqlite() {
    claims_by_relation(Backend::Sqlite).await;
}

#[tokio::test]
async fn claims_by_relation_on_postgres() {
    claims_by_relation(Backend::Postgres).await;
}

/// `n` claims of alice's phone through each of `urls` at once; the packages handed out.
async fn claim_at_once(urls: &[String], n: usize) -> Vec<Vec<u8>> {
    let mut tasks = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut claimer = Dev::connect(&url, "acme", "bob", &format!("b{i}")).await;
            let mut got = Vec::new();
            for _ in 0..n {
                let claimed = claimer.claim(&["alice"]).await;
                if let Some(p) = package_of(&claimed, "alice", "phone") {
                    got.push(p);
                }
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

fn no_repeats(got: &[Vec<u8>]) {
    let unique: BTreeSet<&Vec<u8>> = got.iter().collect();
    assert_eq!(unique.len(), got.len(), "a package handed out twice");
}

#[tokio::test]
async fn concurrent_claimers_on_postgres() {
    let server = TestServer::start(Backend::Postgres).await.unwrap();
    let url = server.ws_url();
    let mut phone = Dev::connect(&url, "acme", "alice", "phone").await;
    let packages = phone.packages(30);
    assert_eq!(held(&phone.upload(&packages, None).await), 30);
    share(&url, "alice", "dir-shared", &["bob"]).await;
    let got = claim_at_once(&[url.clone(), url.clone()], 20).await;
    no_repeats(&got);
    assert_eq!(got.len(), 30, "every package handed out once");
    assert_eq!(held(&phone.upload(&[], None).await), 0);
}

#[tokio::test]
async fn two_nodes_on_one_postgres() {
    let db = pg::fresh_database("confab_e2e", Template::Default)
        .await
        .unwrap();
    let mut nodes = Vec::new();
    for i in 0..2 {
        let dir = std::env::temp_dir().join(format!("confab-dir-{}-{i}", std::process::id()));
        let id = format!("dir{}-n{i}", std::process::id());
        let node = TestServer::start_on(Some(db.clone()), dir, &["--node-id", id.as_str()])
            .await
            .unwrap();
        nodes.push(node);
    }
    let urls: Vec<String> = nodes.iter().map(TestServer::ws_url).collect();
    let mut phone = Dev::connect(&urls[0], "acme", "alice", "phone").await;
    let packages = phone.packages(30);
    assert_eq!(held(&phone.upload(&packages, None).await), 30);
    // Registered through node 0, listed through node 1.
    let mut reader = Dev::connect(&urls[1], "acme", "carol", "c1").await;
    assert_eq!(
        reader.devices("alice").await,
        vec![("phone".to_owned(), phone.mls.signature_key().to_vec())]
    );
    share(&urls[1], "alice", "dir-shared", &["bob"]).await;
    let got = claim_at_once(&urls, 20).await;
    no_repeats(&got);
    assert_eq!(got.len(), 30, "every package handed out once");
    drop(nodes);
    let _ = pg::drop_database(&db).await;
}

#[tokio::test]
async fn hello_device_against_the_tokens_device_claim() {
    let server = TestServer::start(Backend::Sqlite).await.unwrap();
    let url = server.ws_url();
    let bound = device_token("acme", "alice", "phone", 3600);
    let ok = Client::connect_device(&url, &bound, "phone").await.unwrap();
    assert_eq!(ok.account, "alice");
    ok.close().await;
    let err = Client::connect_device(&url, &bound, "laptop")
        .await
        .expect_err("another device");
    assert!(err.to_string().starts_with("auth_failed:"), "{err}");
    // A token without the claim: any device the hello names.
    let open = token("acme", "alice", false, 3600);
    for device in ["phone", "laptop"] {
        let c = Client::connect_device(&url, &open, device).await.unwrap();
        c.close().await;
    }
}
