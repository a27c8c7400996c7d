//! What the scenarios are written with: devices, the acceptor they are replayed through, and
//! the changes of the lunch group.

use super::*;

// ---------------------------------------------------------------------------------------
// scenarios.json
// ---------------------------------------------------------------------------------------

/// One device: a fixed actor writing for one account.
pub(crate) struct Dev {
    pub(crate) account: AccountId,
    pub(crate) service: bool,
    pub(crate) actor: ActorId,
}

impl Dev {
    /// The actor is the account's first 15 bytes, zero-padded, then the device number:
    /// readable in hex (any 16 bytes would do).
    pub(crate) fn new(account: &str, device: u8) -> Dev {
        let mut bytes = [0u8; 16];
        for (slot, b) in bytes.iter_mut().zip(account.bytes().take(15)) {
            *slot = b;
        }
        bytes[15] = device;
        Dev {
            account: acc(account),
            service: false,
            actor: ActorId::from(&bytes[..]),
        }
    }

    pub(crate) fn service(account: &str) -> Dev {
        Dev {
            service: true,
            ..Dev::new(account, 1)
        }
    }

    pub(crate) fn author(&self) -> Author {
        Author {
            account: self.account.clone(),
            service: self.service,
            device: None,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Expect {
    Accepted(u64),
    Rejected(&'static str),
}

pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) hub: Hub,
    pub(crate) objects: HashMap<DocId, Objects>,
    pub(crate) steps: Vec<Value>,
}

impl Scenario {
    pub(crate) fn new(name: &'static str, about: &'static str) -> Self {
        Scenario {
            name,
            about,
            hub: Hub::new(),
            objects: HashMap::new(),
            steps: Vec::new(),
        }
    }

    /// `dev`'s replica of `id`: the genesis and every change the hub accepted, so a write
    /// on it names the current values in its `pred`.
    pub(crate) fn replica(&self, dev: &Dev, id: &DocId) -> Automerge {
        let mut replica = doc::genesis(id).unwrap().with_actor(dev.actor.clone());
        let accepted: Vec<Change> = self
            .hub
            .changes_after(id, 0)
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        replica.apply_changes(accepted).unwrap();
        replica
    }

    /// One intent by `dev` on its replica of `id`, as the client engine writes it.
    pub(crate) fn write(
        &self,
        dev: &Dev,
        id: &DocId,
        f: impl FnOnce(
            &mut Automerge,
        ) -> Result<Option<confab_core::automerge::ChangeHash>, doc::DocError>,
    ) -> Change {
        let mut replica = self.replica(dev, id);
        f(&mut replica).unwrap();
        replica.get_last_local_change().unwrap()
    }

    /// A change of hand-written ops (what a careless writer might send).
    pub(crate) fn raw(
        &self,
        dev: &Dev,
        id: &DocId,
        message: &str,
        at: i64,
        f: impl FnOnce(&mut confab_core::automerge::transaction::Transaction<'_>),
    ) -> Change {
        let mut replica = self.replica(dev, id);
        let mut tx = replica.transaction();
        f(&mut tx);
        tx.commit_with(
            CommitOptions::default()
                .with_message(message.to_owned())
                .with_time(at.div_euclid(1000)),
        );
        replica.get_last_local_change().unwrap()
    }

    pub(crate) fn submit(
        &mut self,
        note: &str,
        dev: &Dev,
        id: &DocId,
        change: Change,
        expect: Expect,
    ) {
        let got = match self
            .hub
            .submit(id, &dev.author(), change.clone(), SERVER_NOW)
        {
            Ok((ack, _)) => Expect::Accepted(ack.seq),
            Err(r) => Expect::Rejected(r.code.as_str()),
        };
        assert_eq!(got, expect, "scenario {}: {note}", self.name);
        let objects = self
            .objects
            .entry(id.clone())
            .or_insert_with(|| genesis_objects(id));
        let ops = match expect {
            Expect::Accepted(_) => describe_ops(&change, objects),
            Expect::Rejected(_) => describe_ops(&change, &mut objects.clone()),
        };
        let mut step = describe_change(&change);
        step.insert("note".into(), json!(note));
        step.insert("doc".into(), json!(id.to_string()));
        step.insert("account".into(), json!(dev.account.as_str()));
        step.insert("service".into(), json!(dev.service));
        step.insert("now_ms".into(), json!(SERVER_NOW));
        step.insert("ops".into(), ops);
        step.insert(
            "expect".into(),
            match expect {
                Expect::Accepted(seq) => json!({"accepted": {"seq": seq}}),
                Expect::Rejected(code) => json!({"rejected": code}),
            },
        );
        self.steps.push(Value::Object(step));
    }

    pub(crate) fn finish(self) -> Value {
        json!({"name": self.name, "about": self.about, "steps": self.steps})
    }
}

pub(crate) fn acme() -> TenantId {
    tenant("acme")
}
pub(crate) fn lunch() -> DocId {
    DocId::conv(&acme(), &conv("lunch"))
}
/// The bucket of messages created on 2026-04-10 (UTC).
pub(crate) fn lunch_bucket() -> DocId {
    DocId::msgs(&acme(), &conv("lunch"), T0.div_euclid(DEFAULT_BUCKET_MS))
}

/// The group of every scenario that needs one: alice creates `acme/conv/lunch` alone (the
/// client engine's creation), then adds bob as a member.
pub(crate) fn lunch_group(s: &mut Scenario, alice: &Dev, bob: &Dev) {
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: alice.account.clone(),
        created_at: T0 + 60_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info {
            title: Some("Lunch".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(alice.account.clone(), Role::Owner)],
        encrypted: false,
    };
    let change = s.write(alice, &lunch(), |d| {
        write::create_conversation(d, &IntentTag::new("i1", "create_conversation"), &spec)
    });
    s.submit(
        "alice creates the group lunch, titled Lunch, with herself as owner",
        alice,
        &lunch(),
        change,
        Expect::Accepted(1),
    );
    let change = add(
        s,
        alice,
        bob.account.as_str(),
        Role::Member,
        "i2",
        T0 + 120_000,
    );
    s.submit(
        "alice adds bob as a member",
        alice,
        &lunch(),
        change,
        Expect::Accepted(2),
    );
}

/// `by` adds `who` at `role` to lunch, as the client engine's `AddMember` writes it.
pub(crate) fn add(s: &Scenario, by: &Dev, who: &str, role: Role, intent: &str, at: i64) -> Change {
    let mut m = Member::new(acc(who), role);
    m.invited_by = Some(by.account.clone());
    m.joined_at = Some(at);
    s.write(by, &lunch(), |d| {
        write::add_member(d, &IntentTag::new(intent, "add_member"), at, &m)
    })
}

pub(crate) fn text(
    s: &Scenario,
    dev: &Dev,
    bucket: &DocId,
    id: &str,
    body: &str,
    intent: &str,
    at: i64,
) -> Change {
    let m = NewMessage::text(msg(id), dev.account.clone(), body, at);
    s.write(dev, bucket, |d| {
        write::post_message(d, &IntentTag::new(intent, "send"), &m)
    })
}

/// A text message of hand-written fields in shard `shard` (its own when `None`).
pub(crate) fn raw_message(
    s: &Scenario,
    dev: &Dev,
    id: &str,
    shard: Option<String>,
    intent: &str,
    at: i64,
    fields: Vec<(&'static str, Field)>,
) -> Change {
    let shard = shard.unwrap_or_else(|| schema::message_shard(id));
    s.raw(
        dev,
        &lunch_bucket(),
        &IntentTag::new(intent, "send").encode(),
        at,
        |tx| {
            let messages = get_map(&*tx, &ROOT, schema::keys::MESSAGES).unwrap();
            let shard_obj = get_map(&*tx, &messages, &shard).unwrap();
            let obj = tx.put_object(&shard_obj, id, ObjType::Map).unwrap();
            for (key, value) in fields {
                match value {
                    Field::Scalar(v) => {
                        tx.put(&obj, key, v).unwrap();
                    }
                    Field::Text(t) => {
                        let text: ObjId = tx.put_object(&obj, key, ObjType::Text).unwrap();
                        tx.splice_text(&text, 0, 0, &t).unwrap();
                    }
                }
            }
        },
    )
}

pub(crate) enum Field {
    Scalar(ScalarValue),
    Text(String),
}

pub(crate) fn fields(author: &str, body: &str, at: i64) -> Vec<(&'static str, Field)> {
    use schema::keys::*;
    vec![
        (AUTHOR, Field::Scalar(author.into())),
        (KIND, Field::Scalar("text".into())),
        (BODY, Field::Scalar(body.into())),
        (CREATED_AT, Field::Scalar(ScalarValue::Int(at))),
    ]
}
