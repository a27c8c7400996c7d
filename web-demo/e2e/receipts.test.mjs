// Receipts and counts, and the profile editor: a message's ticks move from sent to
// delivered (the other page holds it but is hidden) to seen (it is read), a group post shows
// its views, and a display name set in the profile dialog is what the others see.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createGroup, launchBrowser, openConversation, openUser, say, startServer, until, WAIT_MS } from "./harness.mjs";

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

/** Makes the page look hidden (or shown again) to the app, as switching tabs does. */
const setHidden = (page, hidden) =>
  page.evaluate((hidden) => {
    Object.defineProperty(document, "hidden", { configurable: true, get: () => hidden });
    document.dispatchEvent(new Event("visibilitychange"));
  }, hidden);

const receiptOf = (text) => (page) =>
  page.$$eval(".center .msg.mine", (els, text) => els.find((el) => el.querySelector(".msg-body")?.textContent === text)?.dataset.receipt ?? null, text);

const viewsOf = (text) => (page) =>
  page.$$eval(".center .msg", (els, text) => els.find((el) => el.querySelector(".msg-body")?.textContent === text)?.querySelector(".views")?.dataset.views ?? null, text);

test("ticks go sent, delivered, seen; a post counts its views; a profile name shows", { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });

  // Alice names herself in the profile dialog.
  await alice.click("#edit-profile");
  await alice.fill("dialog input[name=displayName]", "Alice Liddell");
  await alice.fill("dialog input[name=status]", "down the rabbit hole");
  await alice.click("dialog button[type=submit]");
  await alice.waitForSelector(".me strong:text-is('Alice Liddell')", { timeout: WAIT_MS });

  const conv = await createGroup(alice, "Receipts", ["bob"]);
  await openConversation(bob, conv);
  await setHidden(bob, true);
  await say(alice, "ping");
  // Bob's device holds it (delivery marker) but he has not looked: delivered, not seen.
  await until(alice, "delivered to bob", receiptOf("ping"), (r) => r === "delivered");
  assert.equal(await viewsOf("ping")(alice), "0");
  // Alice selects her message's text: the receipts that follow change its ticks and count
  // in place, without building the message again (the selection would go with its node).
  const selected = await alice.evaluate(() => {
    const body = [...document.querySelectorAll(".center .msg.mine .msg-body")].find((el) => el.textContent === "ping");
    const range = document.createRange();
    range.selectNodeContents(body);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    return getSelection().toString();
  });
  assert.equal(selected, "ping");
  // He looks: seen, and one view.
  await setHidden(bob, false);
  await until(alice, "seen by bob", receiptOf("ping"), (r) => r === "seen");
  await until(alice, "one view", viewsOf("ping"), (v) => v === "1");
  const kept = await alice.evaluate(() => ({ text: getSelection().toString(), connected: getSelection().anchorNode?.isConnected }));
  assert.deepEqual(kept, { text: "ping", connected: true }, "the selection survived the receipts");
  // Bob sees alice under her profile name.
  await until(bob, "alice's profile name", (p) => p.locator(".center .msg .author").first().textContent(), (n) => n.includes("Alice Liddell"));
});
