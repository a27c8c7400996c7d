// A message deleted for everyone leaves the files of a device that stores through the
// example SQLite adapter (wasm/js/sqlite-storage.mjs over sql.js; wasm/README.md, "Storage";
// docs/STORAGE.md, "Cutting a part's history"): the package and a real confab-server, which
// cuts a deleted message's part at its next pass (CONFAB_CUT_AFTER_DELETE_SECS=0). Bob's
// client saves its database to a file the way a host does (a new file renamed over the old
// one after every write). Alice sends a message whose body, caption, payload, attachment name
// and attachment bytes carry markers, edits the body three times and deletes it for everyone;
// a second message is edited and kept. Once bob's device has the cut, no marker is in any byte
// of any file in bob's directory, while the kept message's newest body is. The same in an
// end-to-end encrypted group (the package runs MLS in Node: WebCrypto is global there).
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import initSqlJs from "sql.js";
import { ConfabClient } from "confab-wasm";
import { sqliteStorage } from "../../wasm/js/sqlite-storage.mjs";
import { freePort, Server, waitFor } from "./support.mjs";

const SQL = await initSqlJs();
const WAIT_MS = 30_000;

/** Every byte of every file in `dir` (the saved database and anything beside it), as Latin-1
 * text, so ASCII markers read as themselves. A file renamed away meanwhile is skipped: its
 * bytes are under its new name. */
function filesOf(dir) {
  const read = (name) => {
    try {
      return readFileSync(join(dir, name)).toString("latin1");
    } catch (e) {
      if (e.code === "ENOENT") return "";
      throw e;
    }
  };
  return readdirSync(dir)
    .map((name) => `${name}\n${read(name)}`)
    .join("\n");
}

/** The adapter over a database the host saves to `dir/confab.sqlite` after every write. */
function fileStorage(dir) {
  const file = join(dir, "confab.sqlite");
  const db = new SQL.Database();
  const persist = (d) => {
    writeFileSync(`${file}.new`, d.export());
    renameSync(`${file}.new`, file);
  };
  return { db, storage: sqliteStorage(db, { persist }) };
}

function find(client, conv, pred) {
  return client.timeline(conv).find((i) => pred(i.message));
}

async function accepted(client, intent, what) {
  const { id } = await intent;
  await waitFor(what, () => client.status(id)?.state === "accepted", WAIT_MS);
}

for (const encrypted of [false, true]) {
  const name = encrypted ? "encrypted" : "plain";
  test(`${name}: a deleted message leaves the files of an adapter store`, { timeout: 120_000 }, async (t) => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(tmpdir(), "confab-node-redaction-"));
    const bobDir = mkdtempSync(join(tmpdir(), "confab-node-bob-files-"));
    const server = new Server(port, dataDir, {
      CONFAB_CUT_AFTER_DELETE_SECS: "0",
      CONFAB_CUT_AFTER_EDIT_SECS: "3600",
    });
    await server.start();
    const make = (account, storage) =>
      new ConfabClient({
        url: `ws://127.0.0.1:${port}/ws`,
        tokenProvider: () => server.token(account),
        storage,
        tenant: "demo",
        account,
        deviceId: `node-${account}-${name}`,
      });
    const { db, storage } = fileStorage(bobDir);
    const alice = make("alice", "memory");
    const bob = make("bob", storage);
    t.after(async () => {
      await alice.dispose();
      await bob.dispose();
      db.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
      rmSync(bobDir, { recursive: true, force: true });
    });
    await Promise.all([alice.connect(), bob.connect()]);
    if (encrypted) {
      // Bob's device must be in the directory, with key packages, to be added.
      await waitFor("key packages uploaded", () => alice.keyPackagesHeld === 20 && bob.keyPackagesHeld === 20, WAIT_MS);
    }

    const run = Math.random().toString(36).slice(2, 8);
    const m = (what) => `zq${what}x${run}`;
    const bodies = [0, 1, 2, 3].map((n) => m(`gonebody${n}`));
    const [caption, payload, fileName, fileBytes] = ["gonecaption", "gonepayload", "gonefilename", "gonefilebytes"].map(m);
    const gone = [...bodies, caption, payload, fileName, fileBytes];
    const kept = [m("keptold"), m("keptnew")];

    const made = await alice.createGroup({ title: `Redaction ${run}`, members: ["bob"], encrypted });
    await waitFor("the group accepted", () => alice.status(made.id)?.state === "accepted", WAIT_MS);
    const conv = made.conv;
    const file = new Blob([`${fileBytes}\n`.repeat(8)], { type: "text/plain" });
    const attachment = await alice.uploadAttachment(conv, file, { name: `${fileName}.txt` });
    const first = await alice.send(conv, { body: bodies[0], caption, payload: { note: payload }, attachments: [attachment] });
    await waitFor("the first message accepted", () => alice.status(first.id)?.state === "accepted", WAIT_MS);
    for (const body of bodies.slice(1)) await accepted(alice, alice.edit(conv, first.message, body), `the edit to ${body}`);
    const second = await alice.send(conv, kept[0]);
    await accepted(alice, alice.edit(conv, second.message, kept[1]), "the kept message's edit");

    await bob.openConversation(conv);
    await waitFor("bob reads both messages", () => {
      const doomed = find(bob, conv, (msg) => msg.id === first.message);
      return doomed?.message.body === bodies[3] && find(bob, conv, (msg) => msg.body === kept[1]);
    }, WAIT_MS);
    const item = find(bob, conv, (msg) => msg.id === first.message);
    assert.equal(item.isEncrypted, encrypted);
    const shown = item.message;
    assert.ok(shown.caption === caption && shown.payload.includes(payload) && shown.attachments.includes(fileName));
    const download = await bob.downloadAttachment(JSON.parse(shown.attachments)[0]);
    assert.ok((await download.text()).includes(fileBytes), "bob can fetch the attachment");
    // Plain, every earlier body is in bob's copy of the history too (what the cut must
    // remove); sealed, the device keeps only what it opened last (earlier bodies are
    // ciphertext). Nothing stores the attachment's bytes: the check is that it stays so.
    const seen = [...(encrypted ? bodies.slice(-1) : bodies), caption, payload, fileName, kept[1]];
    await waitFor("bob's saved file holding the message", () => seen.every((x) => filesOf(bobDir).includes(x)), WAIT_MS);

    await accepted(alice, alice.delete(conv, first.message), "the delete");
    const holding = () => gone.filter((x) => filesOf(bobDir).includes(x));
    await waitFor("the deleted content gone from bob's files", () => holding().length === 0, WAIT_MS).catch((e) => {
      throw new Error(`${e.message}: still there: ${holding().join(", ")}`);
    });
    assert.ok(filesOf(bobDir).includes(kept[1]), "the kept message's newest body stays");
    const tomb = find(bob, conv, (msg) => msg.id === first.message).message;
    assert.ok(tomb.deletedAt && tomb.body === "", "bob shows a tombstone");
  });
}
