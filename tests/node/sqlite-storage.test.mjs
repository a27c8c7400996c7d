// A mobile host's storage: the example SQLite adapter (wasm/js/sqlite-storage.mjs, over
// sql.js saved to a file) passes the store conformance suite, and a client's history and
// outbox survive closing the app and opening it again from the same database file.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import initSqlJs from "sql.js";
import { ConfabClient, checkStorageAdapter } from "confab-wasm";
import { sqliteStorage } from "../../wasm/js/sqlite-storage.mjs";
import { freePort, Server, waitFor } from "./support.mjs";

const SQL = await initSqlJs();

/** Opens the database file (or a new one) the way an app does at start. */
function openFile(file) {
  const db = new SQL.Database(existsSync(file) ? readFileSync(file) : undefined);
  const storage = sqliteStorage(db, { persist: (d) => writeFileSync(file, d.export()) });
  return { db, storage };
}

const bodies = (client, conv) => client.timeline(conv).map((i) => i.message.body);

test("the SQLite adapter passes the store conformance suite", async () => {
  const db = new SQL.Database();
  await checkStorageAdapter(sqliteStorage(db));
  db.close();
});

test("history and outbox survive closing the app and reopening the database file", { timeout: 120000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "confab-sqlite-"));
  const file = join(dir, "confab.sqlite");
  const port = await freePort();
  const serverDir = join(dir, "server");
  mkdirSync(serverDir);
  const server = new Server(port, serverDir);
  await server.start();
  const open = (storage) =>
    new ConfabClient({
      url: `ws://127.0.0.1:${port}/ws`,
      tokenProvider: () => server.token("alice"),
      storage,
      tenant: "demo",
      account: "alice",
      reconnect: { minDelayMs: 100, maxDelayMs: 800 },
    });
  let first;
  let second;
  try {
    // First run: accepted history, then two messages written offline (in the outbox).
    const a = openFile(file);
    first = open(a.storage);
    await first.connect();
    const { conv } = await first.createGroup({ title: "On the phone", members: ["bob"] });
    const sent = await first.send(conv, "accepted before closing");
    await waitFor("the ack", () => first.status(sent.id)?.state === "accepted");
    await first.disconnect();
    const queued = [await first.send(conv, "queued 1"), await first.send(conv, "queued 2")];
    assert.deepEqual(queued.map((q) => first.status(q.id).state), ["pending", "pending"]);
    await first.dispose();
    first.free();
    first = undefined;
    a.db.close();

    // The app restarts: a new client on the same file, offline.
    const b = openFile(file);
    second = open(b.storage);
    await second.ready();
    assert.ok(second.conversations().some((c) => c.conv === conv && c.title === "On the phone"));
    await second.openConversation(conv);
    assert.deepEqual(bodies(second, conv), ["accepted before closing", "queued 1", "queued 2"]);
    assert.deepEqual(
      second.timeline(conv).map((i) => i.pending),
      [false, true, true],
      "the accepted message keeps its seq, the queued ones wait",
    );
    const outbox = second.outbox().filter((o) => o.intent.type === "send");
    assert.deepEqual(
      outbox.map((o) => [o.intent.message.body, o.status.state]),
      [
        ["queued 1", "pending"],
        ["queued 2", "pending"],
      ],
    );

    // Online again, the outbox goes out and is accepted once.
    await second.connect();
    await waitFor("the outbox accepted", () => second.outbox().length === 0);
    assert.ok(second.timeline(conv).every((i) => !i.pending));
    await second.dispose();
    second.free();
    second = undefined;
    b.db.close();

    // And the accepted state is what the file holds now.
    const c = openFile(file);
    const third = open(c.storage);
    await third.ready();
    await third.openConversation(conv);
    assert.deepEqual(bodies(third, conv), ["accepted before closing", "queued 1", "queued 2"]);
    assert.equal(third.outbox().length, 0, "nothing left to send again");
    await third.dispose();
    third.free();
    c.db.close();
  } finally {
    await first?.dispose();
    await second?.dispose();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
