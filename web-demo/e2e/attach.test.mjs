// Attachments through the wasm package (docs/ATTACHMENTS.md, "Clients"): alice picks a file
// of three chunks, the progress bar moves while it uploads, the message carries it, and bob
// sees it and downloads the same bytes. A type the server refuses shows its code in the
// composer and sends nothing.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createGroup, launchBrowser, openConversation, openUser, SIZES, startServer, WAIT_MS } from "./harness.mjs";

const TEST_MS = 120_000;
let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
});

/** `n` bytes of text that differ from chunk to chunk. */
function pattern(n) {
  const bytes = Buffer.alloc(n);
  for (let i = 0; i < n; i++) bytes[i] = 97 + ((i * 7 + Math.floor(i / 1021)) % 26);
  return bytes;
}

test("a file goes up in chunks with progress and comes down the same", { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice", SIZES[0]);
  const bob = await openUser(browser, server.base, "bob", SIZES[0]);
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  const conv = await createGroup(alice, "Files", ["bob"]);
  // Every value the app gives the progress bar.
  await alice.evaluate(() => {
    window.progressSeen = [];
    const bar = document.querySelector(".center .composer progress.upload-progress");
    const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, "value").set;
    Object.defineProperty(bar, "value", {
      set(v) {
        set.call(this, v);
        window.progressSeen.push(Number(v));
      },
      get() {
        return Number(this.getAttribute("value") ?? 0);
      },
    });
  });
  const bytes = pattern(2.5 * 1024 * 1024);
  await alice.setInputFiles(".center .composer input[type=file]", { name: "notes.txt", mimeType: "text/plain", buffer: bytes });
  const mine = alice.locator('.center .msg.mine button.attachment:text-is("📎 notes.txt")');
  await mine.waitFor({ timeout: WAIT_MS });
  const seen = await alice.evaluate(() => window.progressSeen);
  const steps = [...new Set(seen.filter((v) => v > 0))];
  assert.deepEqual(
    steps.map((v) => v.toFixed(2)),
    ["0.40", "0.80", "1.00"],
    `one step per 1 MiB chunk, up to 100% (seen ${JSON.stringify(seen)})`,
  );

  await openConversation(bob, conv);
  const his = bob.locator('.center .msg button.attachment:text-is("📎 notes.txt")');
  await his.waitFor({ timeout: WAIT_MS });
  const [popup] = await Promise.all([bob.waitForEvent("popup"), his.click()]);
  const got = await popup.evaluate(async () => Array.from(new Uint8Array(await (await fetch(location.href)).arrayBuffer())));
  assert.equal(got.length, bytes.length);
  assert.ok(Buffer.from(got).equals(bytes), "bob's download is byte-identical");
});

test("a refused type shows the server's code and sends nothing", { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice", SIZES[0]);
  t.after(async () => {
    await alice.context().close();
    assert.deepEqual(alice.errors, [], "alice's page threw");
  });
  await createGroup(alice, "Pages", []);
  await alice.setInputFiles(".center .composer input[type=file]", {
    name: "page.html",
    mimeType: "text/html",
    buffer: Buffer.from("<p>hi</p>"),
  });
  await alice.waitForSelector(".center .composer .note[data-code=type_not_allowed]", { timeout: WAIT_MS });
  assert.equal(await alice.locator(".center .msg.mine").count(), 0);
});
