// A client in another language, written from docs/SCHEMA.md alone: JS Automerge from npm
// (not the confab-wasm package) rebuilds the genesis changes, creation changes and message
// changes of docs/vectors/ byte for byte, and node:crypto derives the ids. If this needs
// anything docs/SCHEMA.md does not say, the docs are not enough: fix them, not this test.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";
import * as A from "@automerge/automerge";

const vectors = resolve(dirname(fileURLToPath(import.meta.url)), "../../docs/vectors");
const load = (name) => JSON.parse(readFileSync(resolve(vectors, name), "utf8"));
const genesisFile = load("genesis.json");
const idsFile = load("ids.json");
const scenarios = load("scenarios.json").scenarios;

const utf8 = (s) => Buffer.from(s, "utf8");
const sha256 = (bytes) => createHash("sha256").update(bytes).digest();
const hex = (bytes) => Buffer.from(bytes).toString("hex");
// Every string of the schema is a scalar string, never Automerge Text (SCHEMA.md, "JS Automerge").
const S = (s) => new A.ImmutableString(s);

// SCHEMA.md, "Genesis": the top-level maps of each kind, in order.
const GENESIS_MAPS = {
  conv: ["meta", "info", "settings", "members", "pins", "reads", "lifecycle"],
  msgs: ["messages", "reactions"],
  profile: [],
  private: ["contacts", "convs", "drafts", "scheduled"],
};
const shardKey = (n) => String(n).padStart(2, "0");

// SCHEMA.md, "Derived actors": the first 16 bytes of SHA-256(domain + document id).
const derivedActor = (domain, docId) => hex(sha256(utf8(domain + docId)).subarray(0, 16));
const genesisActor = (docId) => derivedActor("confab/genesis/v1\0", docId);
const creationActor = (docId) => derivedActor("confab/create/v1\0", docId);

function genesis(docId) {
  const kind = docId.split("/")[1];
  let doc = A.init({ actor: genesisActor(docId) });
  doc = A.change(doc, { message: "genesis", time: 0 }, (d) => {
    d.schema = new A.Uint(1);
    for (const key of GENESIS_MAPS[kind]) {
      d[key] = {};
      if (key === "messages") for (let i = 0; i < 64; i++) d.messages[shardKey(i)] = {};
    }
  });
  return doc;
}

// A replica of `docId` written by `actor`: the genesis, then the changes it already holds.
function replica(docId, actor, earlier = []) {
  const [doc] = A.applyChanges(A.clone(genesis(docId), { actor }), earlier);
  return doc;
}

// One intent is one change: `intent/<id>/<kind>`, time in seconds. Keys are put one at a
// time, in the order of the vector (JS Automerge puts an object literal's keys sorted).
function write(doc, { message, timeMs }, fn) {
  const next = A.change(doc, { message, time: Math.floor(timeMs / 1000) }, fn);
  return { doc: next, change: A.getLastLocalChange(next) };
}

// SCHEMA.md, "Creating a group, channel, thread or system conversation": the settings the
// reference client writes when it creates a group or a thread with the defaults, in order.
const GROUP_SETTINGS = [
  ["send_policy", S("all_members")],
  ["join_policy", S("invite_only")],
  ["join_approval_required", false],
  ["info_edit_policy", S("admins_only")],
  ["subroom_policy", S("all_members")],
  ["max_subroom_depth", 8],
  ["slow_mode_seconds", 0],
  ["allow_reactions", true],
  ["allow_stickers", true],
  ["allow_attachments", true],
];

function putAll(map, entries) {
  for (const [key, value] of entries) map[key] = value;
}

function assertStep(step, change, what) {
  assert.equal(A.decodeChange(change).hash, step.hash, `${what}: hash`);
  assert.equal(hex(change), step.change, `${what}: bytes`);
}

const scenario = (name) => scenarios.find((s) => s.name === name).steps;
const bytesOf = (step) => Buffer.from(step.change, "hex");
// The replica step `i` was written on: its document as the server had accepted it so far.
function replicaAt(steps, i) {
  const { doc, actor } = steps[i];
  const accepted = steps.slice(0, i).filter((s) => s.doc === doc && s.expect.accepted);
  return replica(doc, actor, accepted.map(bytesOf));
}

// SCHEMA.md, "Ids": the length-prefixed SHA-256 derivation.
function hashedId(prefix, domain, parts) {
  const chunks = [utf8(domain)];
  for (const part of parts) {
    const bytes = utf8(part);
    const len = Buffer.alloc(8);
    len.writeBigUInt64BE(BigInt(bytes.length));
    chunks.push(len, bytes);
  }
  const preimage = Buffer.concat(chunks);
  return { preimage, digest: sha256(preimage), id: prefix + hex(sha256(preimage).subarray(0, 16)) };
}
const byteOrder = (a, b) => Buffer.compare(utf8(a), utf8(b));
function directId(tenant, a, b) {
  const [lo, hi] = [a, b].sort(byteOrder);
  return hashedId("d-", "confab/direct/v1", [tenant, lo, hi]);
}
const supportId = (tenant, client, resource) =>
  hashedId("s-", "confab/support/v1", [tenant, client, resource]);
const messageShard = (id) => shardKey(sha256(utf8(id))[0] % 64);

test("genesis changes: the same bytes from the document id alone", () => {
  assert.ok(genesisFile.genesis.length >= 8);
  for (const v of genesisFile.genesis) {
    assert.equal(genesisActor(v.doc), v.actor, v.doc);
    assertStep(v, A.getLastLocalChange(genesis(v.doc)), v.doc);
    if (v.creation_actor) assert.equal(creationActor(v.doc), v.creation_actor, v.doc);
  }
});

test("direct and support ids, shards and reaction keys", () => {
  for (const v of idsFile.direct) {
    const got = directId(v.tenant, v.a, v.b);
    assert.equal(hex(got.preimage), v.preimage, `${v.a}/${v.b}`);
    assert.equal(hex(got.digest), v.sha256);
    assert.equal(got.id, v.id);
  }
  for (const v of idsFile.support) {
    const got = supportId(v.tenant, v.client, v.resource);
    assert.equal(hex(got.preimage), v.preimage);
    assert.equal(got.id, v.id);
  }
  for (const v of idsFile.shards) assert.equal(messageShard(v.message), v.shard, v.message);
  // SCHEMA.md, "Ids": a reaction's emoji is 1..32 UTF-8 bytes without whitespace, control
  // characters or `|`.
  const emojiOk = (e) => e.length > 0 && utf8(e).length <= 32 && !/[\p{White_Space}\p{Cc}|]/u.test(e);
  for (const v of idsFile.reactions) {
    assert.equal(`${v.message}|${v.account}|${v.emoji}`, v.key);
    assert.equal(emojiOk(v.emoji), v.valid, JSON.stringify(v.emoji));
  }
});

test("id charsets and lengths", () => {
  // SCHEMA.md, "Ids": ASCII letters, digits, `_` and `-` (accounts also `.`, `@`, `+`), 1..64.
  const plain = /^[A-Za-z0-9_-]{1,64}$/;
  const account = /^[A-Za-z0-9_.@+-]{1,64}$/;
  for (const v of idsFile.ids) {
    const re = v.type === "account" ? account : plain;
    assert.equal(re.test(v.value), v.valid, `${v.type} ${JSON.stringify(v.value)}`);
  }
  // Buckets: `<period>` or `<period>.<part>` in normal form; period = floor(created_at / bucket_ms).
  const bucket = /^(-?(?:0|[1-9][0-9]*))(?:\.([1-9][0-9]*))?$/;
  for (const v of idsFile.buckets.doc_ids) {
    const [tenant, kind, key] = v.doc.split("/");
    const dot = key.indexOf(".");
    const ok =
      kind === "msgs" && dot > 0 && plain.test(key.slice(0, dot)) && bucket.test(key.slice(dot + 1)) && !!tenant;
    assert.equal(ok, v.valid, v.doc);
  }
  for (const v of idsFile.buckets.periods) {
    assert.equal(Math.floor(v.created_at / v.bucket_ms), v.period, String(v.created_at));
  }
});

test("a group's creation, an add, a message, a reaction and a thread", () => {
  const steps = scenario("group");
  // 1. alice creates acme/conv/lunch (SCHEMA.md, "Creating a group, channel, thread or system conversation").
  const lunch = "acme/conv/lunch";
  const createdAt = 1775779260000;
  let alice = replica(lunch, steps[0].actor);
  let out = write(alice, { message: "intent/i1/create_conversation", timeMs: createdAt }, (d) => {
    putAll(d.meta, [
      ["kind", S("group")],
      ["created_by", S("alice")],
      ["created_at", createdAt],
      ["bucket_ms", 86400000],
    ]);
    d.info.title = S("Lunch");
    putAll(d.settings, GROUP_SETTINGS);
    d.members.alice = {};
    putAll(d.members.alice, [
      ["role", S("owner")],
      ["status", S("active")],
    ]);
  });
  assertStep(steps[0], out.change, "creation");
  // 2. alice adds bob.
  const addedAt = 1775779320000;
  out = write(out.doc, { message: "intent/i2/add_member", timeMs: addedAt }, (d) => {
    d.members.bob = {};
    putAll(d.members.bob, [
      ["role", S("member")],
      ["status", S("active")],
      ["joined_at", addedAt],
      ["invited_by", S("alice")],
    ]);
  });
  assertStep(steps[1], out.change, "add bob");
  // 3. bob posts m1 in the bucket of its day, in the message's shard.
  const sentAt = 1775779380000;
  const bucket = `acme/msgs/lunch.${Math.floor(sentAt / 86400000)}`;
  assert.equal(bucket, steps[2].doc);
  const bob = replica(bucket, steps[2].actor);
  out = write(bob, { message: "intent/i3/send", timeMs: sentAt }, (d) => {
    const shard = d.messages[messageShard("m1")];
    shard.m1 = {};
    putAll(shard.m1, [
      ["author", S("bob")],
      ["kind", S("text")],
      ["body", S("Pizza at 12?")],
      ["created_at", sentAt],
    ]);
  });
  assertStep(steps[2], out.change, "bob's message");
  // 4. alice reacts: the key holds the time.
  const reactedAt = 1775779440000;
  out = write(replicaAt(steps, 3), { message: "intent/i4/react", timeMs: reactedAt }, (d) => {
    d.reactions["m1|alice|👍"] = reactedAt;
  });
  assertStep(steps[3], out.change, "reaction");
  // 6. bob opens a thread under m1 (after carol's add, step 5, which is like step 2).
  const threadAt = 1775779560000;
  const thread = replica("acme/conv/lunch-t1", steps[5].actor);
  out = write(thread, { message: "intent/i6/create_conversation", timeMs: threadAt }, (d) => {
    putAll(d.meta, [
      ["kind", S("thread")],
      ["created_by", S("bob")],
      ["created_at", threadAt],
      ["bucket_ms", 86400000],
      ["parent", S("lunch")],
      ["parent_message", S("m1")],
      ["depth", 1],
    ]);
    d.info.title = S("Pizza order");
    putAll(d.settings, GROUP_SETTINGS);
    d.members.bob = {};
    putAll(d.members.bob, [
      ["role", S("owner")],
      ["status", S("active")],
    ]);
  });
  assertStep(steps[5], out.change, "thread");
});

test("deterministic creation changes: direct conversations and support threads", () => {
  const [direct] = scenario("direct");
  const id = `acme/conv/${directId("acme", "bob", "alice").id}`;
  assert.equal(id, direct.doc);
  let out = write(replica(id, creationActor(id)), { message: "create", timeMs: 0 }, (d) => {
    putAll(d.meta, [
      ["kind", S("direct")],
      ["created_at", 0],
      ["bucket_ms", 86400000],
    ]);
    for (const account of ["bob", "alice"].sort(byteOrder)) {
      d.members[account] = {};
      putAll(d.members[account], [
        ["role", S("member")],
        ["status", S("active")],
      ]);
    }
  });
  assertStep(direct, out.change, "direct creation");

  const [support] = scenario("support");
  const sid = `acme/conv/${supportId("acme", "carol", "flat-7").id}`;
  assert.equal(sid, support.doc);
  out = write(replica(sid, creationActor(sid)), { message: "create", timeMs: 0 }, (d) => {
    putAll(d.meta, [
      ["kind", S("support")],
      ["created_at", 0],
      ["bucket_ms", 86400000],
      ["resource", S("flat-7")],
      ["client", S("carol")],
      ["owner", S("olga")],
    ]);
    d.members.olga = {};
    putAll(d.members.olga, [
      ["role", S("owner")],
      ["status", S("active")],
    ]);
    d.members.carol = {};
    putAll(d.members.carol, [
      ["role", S("member")],
      ["status", S("active")],
    ]);
  });
  assertStep(support, out.change, "support creation");
});

test("JS Automerge's defaults are the refused changes of the vectors", () => {
  // A plain JS string is Automerge Text (refused unsupported_op); the vector's change with a
  // Text body is exactly what it writes.
  const steps = scenario("message_values");
  const t = steps.findIndex((s) => s.expect.rejected === "unsupported_op");
  const textBody = steps[t];
  const at = 1775779380000;
  const out = write(replicaAt(steps, t), { message: textBody.message, timeMs: at }, (d) => {
    const shard = d.messages[messageShard("m5")];
    shard.m5 = {};
    putAll(shard.m5, [
      ["author", S("bob")],
      ["kind", S("text")],
      ["body", "hi"],
      ["created_at", at],
    ]);
  });
  assertStep(textBody, out.change, "text body");
  // `new A.Uint(n)` is a uint: every integer of the schema but the genesis `schema` is int.
  const u = steps.findIndex((s) => s.note.includes("uint"));
  const uint = steps[u];
  const out2 = write(replicaAt(steps, u), { message: uint.message, timeMs: at }, (d) => {
    const shard = d.messages[messageShard("m6")];
    shard.m6 = {};
    putAll(shard.m6, [
      ["author", S("bob")],
      ["kind", S("text")],
      ["body", S("hi")],
      ["created_at", new A.Uint(at)],
    ]);
  });
  assertStep(uint, out2.change, "uint created_at");
});
