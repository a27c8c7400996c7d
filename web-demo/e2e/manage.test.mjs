// Lock, delete and block through the demo's own controls: the other page's composer says why
// it cannot post, the same refusal the server gives.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { bodies, createGroup, launchBrowser, openConversation, openUser, say, startServer, until, WAIT_MS } from "./harness.mjs";

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

const denied = (page) => page.locator(".center .composer .denied").textContent();

test("an admin locks and unlocks; the owner deletes; the others are told why", { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  const conv = await createGroup(alice, "Lockable", ["bob"]);
  await openConversation(bob, conv);
  // Bob is not an admin: his lock button is disabled with the policy's reason.
  const bobLock = bob.locator('.center button[data-action="lock"]');
  await bobLock.waitFor({ timeout: WAIT_MS });
  assert.equal(await bobLock.isDisabled(), true);

  await alice.click('.center button[data-action="lock"]');
  await bob.locator(".center #locked").waitFor({ timeout: WAIT_MS });
  await until(bob, "bob's composer says why", denied, (text) => /locked/i.test(text));
  assert.equal(await bob.locator(".center .composer textarea").isDisabled(), true);

  await alice.click('.center button[data-action="unlock"]');
  await until(bob, "bob's composer open again", denied, (text) => text === "");
  await say(bob, "back again");
  await until(alice, "bob's message", bodies, (b) => b.includes("back again"));

  // The owner deletes (the page asks first); the conversation leaves bob's list.
  alice.once("dialog", (d) => d.accept());
  await alice.click('.center button[data-action="delete-conversation"]');
  await until(bob, "gone from bob's list", (p) => p.locator(`.conv-item[data-conv="${conv}"]`).count(), (n) => n === 0);
});
