//! `scenarios.json`: changes with the verdicts the acceptor gives them.

use super::*;

pub(crate) fn scenario_group() -> Value {
    let mut s = Scenario::new(
        "group",
        "A group from creation to a thread: creation by alice alone, alice adds bob, bob's message, alice's reaction, bob (a member) adds carol as a member, bob opens a thread under his message.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let change = text(
        &s,
        &bob,
        &lunch_bucket(),
        "m1",
        "Pizza at 12?",
        "i3",
        T0 + 180_000,
    );
    s.submit(
        "bob posts m1 in the bucket of its day (period 20553, part 0)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Accepted(1),
    );
    let change = s.write(&alice, &lunch_bucket(), |d| {
        write::react(
            d,
            &IntentTag::new("i4", "react"),
            T0 + 240_000,
            &msg("m1"),
            &alice.account,
            "👍",
            true,
        )
    });
    s.submit(
        "alice reacts 👍 to m1: the key m1|alice|👍 holds the time (int)",
        &alice,
        &lunch_bucket(),
        change,
        Expect::Accepted(2),
    );
    let change = add(&s, &bob, "carol", Role::Member, "i5", T0 + 300_000);
    s.submit(
        "bob (a member) adds carol as a member: members add at their own rank up to member",
        &bob,
        &lunch(),
        change,
        Expect::Accepted(3),
    );
    let thread = DocId::conv(&acme(), &conv("lunch-t1"));
    let spec = write::CreateConv {
        kind: ConvKind::Thread,
        created_by: bob.account.clone(),
        created_at: T0 + 360_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: Some(ThreadLink {
            parent: conv("lunch"),
            message: msg("m1"),
            depth: 1,
        }),
        info: Info {
            title: Some("Pizza order".into()),
            ..Info::default()
        },
        settings: Settings::defaults_for(ConvKind::Thread),
        members: vec![Member::new(bob.account.clone(), Role::Owner)],
        encrypted: false,
    };
    let change = s.write(&bob, &thread, |d| {
        write::create_conversation(d, &IntentTag::new("i6", "create_conversation"), &spec)
    });
    s.submit(
        "bob creates the thread lunch-t1 under m1 (parent lunch, depth 1)",
        &bob,
        &thread,
        change,
        Expect::Accepted(1),
    );
    s.finish()
}

pub(crate) fn scenario_not_member() -> Value {
    let mut s = Scenario::new(
        "not_member",
        "carol, who is not a member of lunch, posts a message in its bucket.",
    );
    let (alice, bob, carol) = (
        Dev::new("alice", 1),
        Dev::new("bob", 1),
        Dev::new("carol", 1),
    );
    lunch_group(&mut s, &alice, &bob);
    let change = text(
        &s,
        &carol,
        &lunch_bucket(),
        "c1",
        "hello?",
        "i1",
        T0 + 180_000,
    );
    s.submit(
        "carol is no member of lunch",
        &carol,
        &lunch_bucket(),
        change,
        Expect::Rejected("not_member"),
    );
    s.finish()
}

pub(crate) fn scenario_role_too_high() -> Value {
    let mut s = Scenario::new(
        "role_too_high",
        "bob, a member, tries to add carol as owner and as moderator (docs/POLICY.md, \"Members\").",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let change = add(&s, &bob, "carol", Role::Owner, "i1", T0 + 180_000);
    s.submit(
        "nobody adds an owner",
        &bob,
        &lunch(),
        change,
        Expect::Rejected("role_too_high"),
    );
    let change = add(&s, &bob, "carol", Role::Moderator, "i2", T0 + 181_000);
    s.submit(
        "a member adds nobody above member",
        &bob,
        &lunch(),
        change,
        Expect::Rejected("role_too_high"),
    );
    s.finish()
}

pub(crate) fn scenario_messages() -> Value {
    let mut s = Scenario::new(
        "message_values",
        "What the acceptor checks in a message: its shard, its body's length in characters, its types.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    lunch_group(&mut s, &alice, &bob);
    let at = T0 + 180_000;
    let own = schema::message_shard("m2");
    let wrong = format!("{:02}", (own.parse::<u8>().unwrap() + 1) % 64);
    let change = raw_message(
        &s,
        &bob,
        "m2",
        Some(wrong),
        "i1",
        at,
        fields("bob", "hi", at),
    );
    s.submit(
        "m2 written into a shard that is not SHA-256(\"m2\")[0] mod 64",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("invalid_value"),
    );
    let long = "a".repeat(4001);
    let change = raw_message(&s, &bob, "m3", None, "i2", at, fields("bob", &long, at));
    s.submit(
        "a body of 4001 characters",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("too_long"),
    );
    let mut fits = "a".repeat(3999);
    fits.push('😀');
    let change = raw_message(&s, &bob, "m4", None, "i3", at, fields("bob", &fits, at));
    s.submit(
        "a body of 4000 characters (3999 × a and one 😀: 4001 UTF-16 units, 4003 bytes)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Accepted(1),
    );
    let mut as_text = fields("bob", "", at);
    as_text[2].1 = Field::Text("hi".into());
    let change = raw_message(&s, &bob, "m5", None, "i4", at, as_text);
    s.submit(
        "a body written as Automerge Text (JS Automerge's default for strings)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("unsupported_op"),
    );
    let mut as_uint = fields("bob", "hi", at);
    as_uint[3].1 = Field::Scalar(ScalarValue::Uint(u64::try_from(at).unwrap()));
    let change = raw_message(&s, &bob, "m6", None, "i5", at, as_uint);
    s.submit(
        "created_at written as uint (every integer of the schema is int)",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let mut as_float = fields("bob", "hi", at);
    as_float[3].1 = Field::Scalar(ScalarValue::F64(at as f64 + 0.5));
    let change = raw_message(&s, &bob, "m7", None, "i6", at, as_float);
    s.submit(
        "created_at written as a float",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let mut as_counter = fields("bob", "hi", at);
    as_counter[3].1 = Field::Scalar(ScalarValue::counter(at));
    let change = raw_message(&s, &bob, "m9", None, "i8", at, as_counter);
    s.submit(
        "created_at written as an Automerge counter",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("wrong_type"),
    );
    let change = raw_message(&s, &bob, "m8", None, "i7", at, fields("alice", "hi", at));
    s.submit(
        "bob posts a message whose author is alice",
        &bob,
        &lunch_bucket(),
        change,
        Expect::Rejected("author_mismatch"),
    );
    s.finish()
}

pub(crate) fn scenario_conflict() -> Value {
    let mut s = Scenario::new(
        "conflicting_write",
        "Two devices of alice set the title from the same state: the second write's pred names a value that is no longer the current one.",
    );
    let (alice, bob) = (Dev::new("alice", 1), Dev::new("bob", 1));
    let alice2 = Dev::new("alice", 2);
    lunch_group(&mut s, &alice, &bob);
    let stale = s.replica(&alice2, &lunch());
    let change = s.write(&alice, &lunch(), |d| {
        write::set_info(
            d,
            &IntentTag::new("i1", "set_info"),
            T0 + 180_000,
            schema::keys::TITLE,
            Some("Pizza"),
        )
    });
    s.submit(
        "alice's phone renames Lunch to Pizza",
        &alice,
        &lunch(),
        change,
        Expect::Accepted(3),
    );
    let mut stale = stale;
    write::set_info(
        &mut stale,
        &IntentTag::new("i1", "set_info"),
        T0 + 181_000,
        schema::keys::TITLE,
        Some("Sushi"),
    )
    .unwrap();
    let change = stale.get_last_local_change().unwrap();
    s.submit(
        "alice's laptop, which has not seen Pizza, renames Lunch to Sushi",
        &alice2,
        &lunch(),
        change,
        Expect::Rejected("conflicting_write"),
    );
    s.finish()
}

pub(crate) fn scenario_direct() -> Value {
    let mut s = Scenario::new(
        "direct",
        "The direct conversation of alice and bob: its deterministic creation change, submitted by either, then a message.",
    );
    let (alice, bob, carol) = (
        Dev::new("alice", 1),
        Dev::new("bob", 1),
        Dev::new("carol", 1),
    );
    let (id, creation) =
        write::direct_creation_change(&acme(), &bob.account, &alice.account).unwrap();
    s.submit(
        "alice submits the creation change of her direct conversation with bob",
        &alice,
        &id,
        creation.clone(),
        Expect::Accepted(1),
    );
    s.submit(
        "bob's device built the same bytes offline: acked with the same seq",
        &bob,
        &id,
        creation.clone(),
        Expect::Accepted(1),
    );
    s.submit(
        "carol resubmits it: an ack would tell her the conversation exists",
        &carol,
        &id,
        creation,
        Expect::Rejected("not_member"),
    );
    let d = direct_conv_id(&acme(), &alice.account, &bob.account);
    let bucket = DocId::msgs(&acme(), &d, T0.div_euclid(DEFAULT_BUCKET_MS));
    let change = text(&s, &bob, &bucket, "dm1", "hi alice", "i1", T0 + 180_000);
    s.submit(
        "bob writes to alice",
        &bob,
        &bucket,
        change,
        Expect::Accepted(1),
    );
    // The creation actor with other content: only the exact expected change may use it.
    let other = DocId::conv(
        &acme(),
        &direct_conv_id(&acme(), &alice.account, &carol.account),
    );
    let mut forged = doc::genesis(&other)
        .unwrap()
        .with_actor(doc::creation_actor(&other));
    let mut tx = forged.transaction();
    let meta = get_map(&tx, &ROOT, schema::keys::META).unwrap();
    tx.put(&meta, schema::keys::KIND, "direct").unwrap();
    tx.put(&meta, schema::keys::CREATED_AT, 1_i64).unwrap();
    tx.commit_with(CommitOptions::default().with_time(0).with_message("create"));
    let change = forged.get_last_local_change().unwrap();
    s.submit(
        "a change of the creation actor that is not the expected creation change",
        &alice,
        &other,
        change,
        Expect::Rejected("forged_actor"),
    );
    let reserved = DocId::conv(&acme(), &conv("d-mine"));
    let spec = write::CreateConv {
        kind: ConvKind::Group,
        created_by: alice.account.clone(),
        created_at: T0 + 200_000,
        bucket_ms: DEFAULT_BUCKET_MS,
        thread: None,
        info: Info::default(),
        settings: Settings::defaults_for(ConvKind::Group),
        members: vec![Member::new(alice.account.clone(), Role::Owner)],
        encrypted: false,
    };
    let change = s.write(&alice, &reserved, |d| {
        write::create_conversation(d, &IntentTag::new("i2", "create_conversation"), &spec)
    });
    s.submit(
        "a group whose id starts with d- (reserved for direct conversations)",
        &alice,
        &reserved,
        change,
        Expect::Rejected("invalid_creation"),
    );
    s.finish()
}

pub(crate) fn scenario_support() -> Value {
    let mut s = Scenario::new(
        "support",
        "The support thread of client carol about resource flat-7 owned by olga: its deterministic creation change, then messages with and without sender stamps.",
    );
    let (carol, olga) = (Dev::new("carol", 1), Dev::new("olga", 1));
    let link = ResourceLink {
        resource: ResourceId::new("flat-7").unwrap(),
        client: carol.account.clone(),
        owner: olga.account.clone(),
    };
    let (id, creation) = write::support_creation_change(&acme(), &link).unwrap();
    s.submit(
        "carol opens the thread",
        &carol,
        &id,
        creation,
        Expect::Accepted(1),
    );
    let sconv = support_conv_id(&acme(), &carol.account, &link.resource);
    let bucket = DocId::msgs(&acme(), &sconv, T0.div_euclid(DEFAULT_BUCKET_MS));
    let change = text(
        &s,
        &carol,
        &bucket,
        "q1",
        "Is it free in May?",
        "i1",
        T0 + 180_000,
    );
    s.submit(
        "carol asks, without stamps",
        &carol,
        &bucket,
        change,
        Expect::Accepted(1),
    );
    let stamped = |s: &Scenario, dev: &Dev, id: &str, role: &str, intent: &str| {
        let mut m = NewMessage::text(msg(id), dev.account.clone(), "Yes", T0 + 240_000);
        m.stamp.sender_role = Some(confab_core::model::support::SenderRole::parse(role).unwrap());
        s.write(dev, &bucket, |d| {
            write::post_message(d, &IntentTag::new(intent, "send"), &m)
        })
    };
    let change = stamped(&s, &olga, "a1", "owner", "i1");
    s.submit(
        "olga answers, stamped sender_role owner",
        &olga,
        &bucket,
        change,
        Expect::Accepted(2),
    );
    let change = stamped(&s, &carol, "q2", "owner", "i2");
    s.submit(
        "carol stamps herself owner",
        &carol,
        &bucket,
        change,
        Expect::Rejected("sender_mismatch"),
    );
    s.finish()
}

pub(crate) fn scenario_kinds() -> Value {
    let mut s = Scenario::new(
        "kinds",
        "Creation changes of a channel and of system conversations.",
    );
    let (alice, bot) = (Dev::new("alice", 1), Dev::service("bot"));
    let create = |s: &Scenario, dev: &Dev, key: &str, kind: ConvKind, intent: &str| {
        let spec = write::CreateConv {
            kind,
            created_by: dev.account.clone(),
            created_at: T0 + 60_000,
            bucket_ms: DEFAULT_BUCKET_MS,
            thread: None,
            info: Info {
                title: Some(format!("{key} title")),
                ..Info::default()
            },
            settings: Settings::defaults_for(kind),
            members: vec![Member::new(dev.account.clone(), Role::Owner)],
            encrypted: false,
        };
        let id = DocId::conv(&acme(), &conv(key));
        let change = s.write(dev, &id, |d| {
            write::create_conversation(d, &IntentTag::new(intent, "create_conversation"), &spec)
        });
        (id, change)
    };
    let (id, change) = create(&s, &alice, "news", ConvKind::Channel, "i1");
    s.submit(
        "alice creates the channel news (send_policy admins_only)",
        &alice,
        &id,
        change,
        Expect::Accepted(1),
    );
    let (id, change) = create(&s, &bot, "notices", ConvKind::System, "i1");
    s.submit(
        "the service account bot creates the system conversation notices",
        &bot,
        &id,
        change,
        Expect::Accepted(1),
    );
    let named = DocId::conv(&acme(), &conv("named"));
    let change = s.raw(
        &alice,
        &named,
        "intent/i3/create_conversation",
        T0 + 60_000,
        |tx| {
            let meta = get_map(&*tx, &ROOT, schema::keys::META).unwrap();
            tx.put(&meta, schema::keys::KIND, "group").unwrap();
            tx.put(&meta, schema::keys::CREATED_BY, "alice").unwrap();
            tx.put(&meta, schema::keys::CREATED_AT, T0 + 60_000)
                .unwrap();
            let info = get_map(&*tx, &ROOT, schema::keys::INFO).unwrap();
            tx.put(&info, schema::keys::CLIENT_NAME, "Carol").unwrap();
            let members = get_map(&*tx, &ROOT, schema::keys::MEMBERS).unwrap();
            let me = tx.put_object(&members, "alice", ObjType::Map).unwrap();
            tx.put(&me, schema::keys::ROLE, "owner").unwrap();
            tx.put(&me, schema::keys::STATUS, "active").unwrap();
        },
    );
    s.submit(
        "a group created with info/client_name (support threads only)",
        &alice,
        &named,
        change,
        Expect::Rejected("support_only"),
    );
    let (id, change) = create(&s, &alice, "alerts", ConvKind::System, "i2");
    s.submit(
        "alice (a user) creates a system conversation",
        &alice,
        &id,
        change,
        Expect::Rejected("service_only"),
    );
    s.finish()
}

pub(crate) fn scenario_vectors() -> Value {
    json!({
        "about": "Changes and the verdict the acceptor gives each (docs/vectors/README.md). Replay each scenario on an empty server, step by step in order: submit `change` (hex) to `doc` as `account` (a service account when `service`) at server time `now_ms`; expect an ack with `seq` or a reject with the code. `ops` lists what each change holds (obj: the path of the map written into, \"\" = root).",
        "scenarios": [
            scenario_group(),
            scenario_not_member(),
            scenario_role_too_high(),
            scenario_messages(),
            scenario_conflict(),
            scenario_direct(),
            scenario_support(),
            scenario_kinds(),
        ],
    })
}
