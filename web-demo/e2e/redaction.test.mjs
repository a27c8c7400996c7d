// A message deleted for everyone leaves another device's browser store (docs/STORAGE.md,
// "Cutting a part's history"). Alice and bob share a group and both have it open. Alice sends
// a message, edits it three times and deletes it; she sends a second one and edits it once.
// Before the delete, bob's raw IndexedDB (every key and value of every database of his
// origin) holds the first message's newest body; once the server has cut the part (the cut
// runs at its next pass after a delete here) and bob's device replaced its copy, none of the
// first message's bodies is in it, while the second message's newest body still is. The same
// in an encrypted group, where bob's device keeps what it opened of each sealed message.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createGroup, deviceReady, launchBrowser, openConversation, openUser, startServer, until } from "./harness.mjs";

const TEST_MS = 120_000;
let server;
let browser;

before(async () => {
  server = await startServer({ env: { CONFAB_CUT_AFTER_DELETE_SECS: "0", CONFAB_CUT_AFTER_EDIT_SECS: "3600" } });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** Everything this page's origin keeps in IndexedDB, keys and values, as one string (bytes
 * as Latin-1, so ASCII markers read as themselves). */
function rawIndexedDb(page) {
  return page.evaluate(async () => {
    const done = (req) => new Promise((ok, fail) => ((req.onsuccess = () => ok(req.result)), (req.onerror = () => fail(req.error))));
    const text = (v) => {
      if (v instanceof ArrayBuffer) v = new Uint8Array(v);
      if (ArrayBuffer.isView(v)) {
        const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
        let s = "";
        for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192));
        return s;
      }
      return typeof v === "string" ? v : JSON.stringify(v) ?? "";
    };
    const parts = [];
    for (const { name } of await indexedDB.databases()) {
      const db = await done(indexedDB.open(name));
      for (const store of db.objectStoreNames) {
        const os = db.transaction(store, "readonly").objectStore(store);
        const [keys, values] = await Promise.all([done(os.getAllKeys()), done(os.getAll())]);
        keys.forEach((k, i) => parts.push(`${name}/${store}/${text(k)}\t${text(values[i])}`));
      }
      db.close();
    }
    return parts.join("\n");
  });
}

/** The id of the message of `conv` whose body is `body`, as `page`'s client shows it. */
function messageId(page, conv, body) {
  return until(
    page,
    `a message saying ${body}`,
    (p) => p.evaluate(([c, b]) => window.confabDemo.session.client.timeline(c).find((i) => i.message.body === b)?.message.id ?? null, [conv, body]),
    (id) => id !== null,
  );
}

for (const encrypted of [false, true]) {
test(`${encrypted ? "encrypted" : "plain"}: a deleted message and its earlier bodies leave another browser's IndexedDB`, { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  const run = Math.random().toString(36).slice(2, 8);
  const gone = [0, 1, 2, 3].map((n) => `zqgone${n}x${run}`);
  const kept = [`zqkeptax${run}`, `zqkeptbx${run}`];
  // In an encrypted group bob's device must be in the directory to be added.
  await deviceReady(bob);
  const conv = await createGroup(alice, `Redaction ${run}`, ["bob"], { encrypted });
  await openConversation(bob, conv);
  const act = (page, fn, ...args) => page.evaluate(([f, a]) => window.confabDemo.session.client[f](...a), [fn, args]);

  await act(alice, "send", conv, gone[0]);
  const doomed = await messageId(alice, conv, gone[0]);
  for (const body of gone.slice(1)) await act(alice, "edit", conv, doomed, body);
  await act(alice, "send", conv, kept[0]);
  const stays = await messageId(alice, conv, kept[0]);
  await act(alice, "edit", conv, stays, kept[1]);
  await messageId(bob, conv, gone[3]);
  await messageId(bob, conv, kept[1]);
  // Plain, every earlier body is there too (the history the cut must remove); sealed, the
  // device keeps only what it opened last (earlier bodies are ciphertext in the history).
  // The store is written after the timeline shows a message: it is read until it holds them.
  const stored = [...(encrypted ? gone.slice(-1) : gone), kept[1]];
  const missing = async (p) => {
    const raw = await rawIndexedDb(p);
    return stored.filter((m) => !raw.includes(m));
  };
  await until(bob, "bob's store holding the bodies (missing listed)", missing, (left) => left.length === 0);
  await act(alice, "delete", conv, doomed);
  // (On a timeout, the entries still holding a deleted body are named.)
  const holding = (raw) => raw.split("\n").filter((e) => gone.some((m) => e.includes(m))).map((e) => e.split("\t")[0]);
  const clean = await until(bob, "the deleted bodies gone from bob's IndexedDB", async (p) => [await rawIndexedDb(p)], ([raw]) => holding(raw).length === 0, 60_000).catch(async (e) => {
    throw new Error(`${e.message.split(";")[0]}: still in ${JSON.stringify(holding(await rawIndexedDb(bob)))}`);
  });
  assert.ok(clean[0].includes(kept[1]), "the kept message's newest body stays");
  const shown = await bob.evaluate((c) => window.confabDemo.session.client.timeline(c).map((i) => [i.message.body, Boolean(i.message.deletedAt)]), conv);
  assert.ok(shown.some(([body, deleted]) => deleted && body === ""), `the tombstone is shown: ${JSON.stringify(shown)}`);
  assert.ok(shown.some(([body]) => body === kept[1]));
});
}
