// Two clients chat through a real confab-server, using the built npm package (wasm/pkg) the
// way a Node app would. The test starts the server itself (CONFAB_SERVER_BIN, default
// target/debug/confab-server) so that it can stop and restart it: the clients must notice,
// reconnect with backoff, fetch a fresh token (the demo server's secret changes on restart)
// and resync from their cursors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfabClient, checkStorageAdapter } from "confab-wasm";
import { freePort, Server, sleep, waitFor } from "./support.mjs";

/** A storage adapter over a Map, as a mobile host would write one over SQLite or files. */
function mapAdapter() {
  const m = new Map();
  return {
    async get(key) {
      return m.get(key);
    },
    async scan(prefix) {
      return [...m.keys()]
        .filter((k) => k.startsWith(prefix))
        .sort()
        .map((k) => [k, m.get(k)]);
    },
    async write(ops) {
      for (const op of ops) {
        if (op.op === "put") m.set(op.key, op.value);
        else if (op.op === "delete") m.delete(op.key);
        else if (op.op === "deletePrefix") {
          for (const k of [...m.keys()]) if (k.startsWith(op.prefix)) m.delete(k);
        }
      }
    },
  };
}

function bodies(client, conv) {
  return client.timeline(conv).map((i) => i.message.body);
}

test("two clients chat through a real server, and survive its restart", { timeout: 120000 }, async () => {
  await checkStorageAdapter(mapAdapter());

  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "confab-node-"));
  const server = new Server(port, dataDir);
  await server.start();
  const url = `ws://127.0.0.1:${port}/ws`;
  const tokenCalls = { alice: 0, bob: 0 };
  const make = (account, storage) =>
    new ConfabClient({
      url,
      tokenProvider: async () => {
        tokenCalls[account] += 1;
        return server.token(account);
      },
      storage,
      tenant: "demo",
      account,
      deviceId: `node-${account}`,
      reconnect: { minDelayMs: 100, maxDelayMs: 800 },
    });
  const alice = make("alice", "memory");
  const bob = make("bob", mapAdapter());
  const events = { alice: [], bob: [] };
  alice.on("*", (e) => events.alice.push(e));
  const offBob = bob.on("*", (e) => events.bob.push(e));
  try {
    await Promise.all([alice.connect(), bob.connect()]);
    assert.ok(alice.online && bob.online);
    assert.ok(events.alice.some((e) => e.type === "online"));

    // Alice starts a group with Bob and writes.
    const { conv } = await alice.createGroup({ title: "Node", members: ["bob"] });
    const hello = await alice.send(conv, "hello bob");
    assert.equal(typeof hello.id, "number");
    assert.equal(typeof hello.message, "string");
    await waitFor("alice's message accepted", () => alice.status(hello.id)?.state === "accepted");

    // Bob opens the conversation (he knows its id from the app) and answers.
    await bob.openConversation(conv);
    await waitFor("bob sees alice", () => bodies(bob, conv).includes("hello bob"));
    assert.equal(bob.conversation(conv).info.title, "Node");
    assert.deepEqual(
      bob.members(conv).map((m) => [m.account, m.role]).sort(),
      [["alice", "owner"], ["bob", "member"]],
    );
    const reply = await bob.send(conv, { body: "hi alice", replyTo: hello.message });
    await waitFor("alice sees bob", () => bodies(alice, conv).includes("hi alice"));
    await waitFor("bob's reply accepted", () => bob.status(reply.id)?.state === "accepted");
    const answer = alice.timeline(conv).find((i) => i.message.body === "hi alice");
    assert.equal(answer.message.replyTo, hello.message);
    assert.equal(answer.message.author, "bob");
    await waitFor("the same accepted timeline on both sides", () => {
      const a = alice.timeline(conv);
      const b = bob.timeline(conv);
      return (
        a.length === 2 &&
        a.every((i) => !i.pending && i.seq !== undefined) &&
        JSON.stringify(a.map((i) => [i.message.id, i.seq])) ===
          JSON.stringify(b.map((i) => [i.message.id, i.seq]))
      );
    });
    assert.ok(events.bob.some((e) => e.type === "timeline" && e.conv === conv));
    assert.ok(alice.conversations().some((c) => c.conv === conv && c.title === "Node"));

    // The server goes away: both go offline, keep working, and come back by themselves.
    const calls = { ...tokenCalls };
    await server.stop();
    await waitFor("both offline", () => !alice.online && !bob.online);
    assert.ok(events.alice.some((e) => e.type === "offline" && e.willRetry === true));
    const offline = await alice.send(conv, "written while the server was down");
    assert.equal(alice.status(offline.id).state, "pending");
    assert.equal(alice.outbox().length, 1);
    await sleep(300);
    await server.start();
    await waitFor("alice's offline message accepted", () => alice.status(offline.id)?.state === "accepted");
    await waitFor("bob resynced", () => bodies(bob, conv).includes("written while the server was down"));
    assert.ok(events.alice.some((e) => e.type === "reconnecting"));
    assert.ok(tokenCalls.alice > calls.alice && tokenCalls.bob > calls.bob, "fresh tokens");
    assert.deepEqual(bodies(alice, conv), ["hello bob", "hi alice", "written while the server was down"]);
    assert.deepEqual(bodies(bob, conv), bodies(alice, conv));

    // A refused intent is an Error with a stable code.
    await assert.rejects(bob.removeMember(conv, "alice"), (e) => {
      assert.ok(e instanceof Error);
      assert.equal(typeof e.code, "string");
      assert.notEqual(e.code, "");
      return true;
    });
    offBob();
    const before = events.bob.length;
    await alice.send(conv, "after bob unsubscribed");
    await waitFor("bob gets it", () => bodies(bob, conv).includes("after bob unsubscribed"));
    assert.equal(events.bob.length, before, "no events after unsubscribe");
  } finally {
    await alice.dispose();
    await bob.dispose();
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
