// End-to-end encryption in the demo: a group made with the dialog's lock toggle shows its
// lock in the list and the header of every member; what its members say is read on their
// pages; a member added later sees what was said before she joined as a message her device
// cannot read (shown, with why, not dropped) and reads everything after.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { closePanel, createGroup, launchBrowser, openConversation, openUser, say, screenshots, startServer, until, WAIT_MS } from "./harness.mjs";

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

/** Waits until the page's device has put its key packages in the server's directory (others
 * can add it to encrypted groups from then on). */
async function deviceReady(page) {
  await until(page, "key packages uploaded", (p) => p.evaluate(() => window.confabDemo.session.client.keyPackagesHeld), (n) => n === 20);
}

const undecryptable = (page) => page.$$eval(".center .timeline .msg-body.undecryptable", (els) => els.map((el) => el.textContent));

test("an encrypted group: lock, sealed messages read by members, history before joining unreadable", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee group");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const carol = await openUser(browser, server.base, "carol");
  const pages = [alice, bob, carol];
  t.after(async () => {
    for (const page of pages) await page.context().close();
    for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  for (const page of pages) await deviceReady(page);

  const conv = await createGroup(alice, "Vault", ["bob"], { encrypted: true });
  await alice.waitForSelector("#encrypted", { timeout: WAIT_MS });
  await say(alice, "sealed before carol");
  await openConversation(bob, conv);
  await bob.locator(`.conv-item[data-conv="${conv}"] .e2ee`).waitFor({ timeout: WAIT_MS });
  await bob.waitForSelector("#encrypted", { timeout: WAIT_MS });
  await bob.waitForSelector(`.center .msg-body:text-is("sealed before carol")`, { timeout: WAIT_MS });
  await say(bob, "bob answers");
  await alice.waitForSelector(`.center .msg-body:text-is("bob answers")`, { timeout: WAIT_MS });
  await shot(bob, "read");

  // Carol is added: her device joins from its Welcome and reads from then on.
  await alice.click("button[data-action=members]");
  await alice.selectOption("#add-member-account", "carol");
  await alice.click("button[data-action=add]");
  await alice.waitForSelector('.member[data-account="carol"]', { timeout: WAIT_MS });
  await closePanel(alice);
  await openConversation(carol, conv);
  await say(alice, "welcome carol");
  await carol.waitForSelector(`.center .msg-body:text-is("welcome carol")`, { timeout: WAIT_MS });
  const unread = await until(carol, "the earlier messages shown as unreadable", undecryptable, (shown) => shown.length === 2);
  for (const text of unread) assert.match(text, /^🔐 This message cannot be read on this device \(.+\)$/);
  const shown = await carol.$$eval(".center .timeline .msg-body", (els) => els.map((el) => el.textContent));
  assert.ok(!shown.includes("sealed before carol"), "carol reads nothing from before she joined");
  await shot(carol, "joined later");
});
