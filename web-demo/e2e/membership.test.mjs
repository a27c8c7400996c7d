// Told, not polled: a group another account creates appears in the member's list as soon as
// it is created, without the page asking the server's REST list (no `/v1/` request at all);
// a removal shows in the open conversation without the removed member doing anything; and
// offline, nothing is fetched in the background (no "Failed to fetch" in the console).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  closePanel,
  createGroup,
  launchBrowser,
  openConversation,
  openUser,
  say,
  screenshots,
  setOfflineSwitch,
  SIZES,
  startServer,
  WAIT_MS,
} from "./harness.mjs";

const TEST_MS = 120_000;
/** The old poll ran every 3 s: the group must show well within one round of it. */
const TOLD_MS = 2_500;
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

for (const size of SIZES) {
  test(`${size.name}: a group another account creates appears without polling`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} told not polled`);
    const alice = await openUser(browser, server.base, "alice", size);
    const bob = await openUser(browser, server.base, "bob", size);
    t.after(async () => {
      for (const page of [alice, bob]) await page.context().close();
      for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
    });
    const asked = [];
    bob.on("request", (r) => {
      const path = new URL(r.url()).pathname;
      if (path.startsWith("/v1/")) asked.push(path);
    });

    const conv = await createGroup(alice, "Told not polled", ["bob"]);
    const created = Date.now();
    const item = bob.locator(`.conv-item[data-conv="${conv}"]`);
    await item.waitFor({ timeout: WAIT_MS });
    const took = Date.now() - created;
    console.log(`${size.name}: the group showed in bob's list ${took} ms after alice's dialog closed`);
    assert.ok(took < TOLD_MS, `bob's list showed the group after ${took} ms`);
    await shot(bob, "told");
    await say(alice, "You are in");
    await openConversation(bob, conv);
    await bob.waitForSelector(`.center .msg-body:text-is("You are in")`, { timeout: WAIT_MS });

    // Removed while looking at it: the conversation says so, and the composer is off.
    await alice.click("button[data-action=members]");
    const remove = alice.locator('.member[data-account="bob"] button[data-action=remove]');
    await remove.waitFor({ timeout: WAIT_MS });
    await remove.click();
    await alice.waitForSelector('.member[data-account="bob"][data-status=removed]', { timeout: WAIT_MS });
    await closePanel(alice);
    const banner = bob.locator(".center .banner.danger");
    await banner.waitFor({ timeout: WAIT_MS });
    assert.match(await banner.textContent(), /^You were removed from (Told not polled|this conversation\.)$/);
    await shot(bob, "removed");

    // Offline by choice: nothing is fetched in the background, so nothing fails every 3 s.
    await setOfflineSwitch(bob, true);
    await bob.context().setOffline(true);
    await new Promise((ok) => setTimeout(ok, 4_000));
    await bob.context().setOffline(false);
    await setOfflineSwitch(bob, false);
    assert.deepEqual(asked, [], "the page never asked the REST API for conversations");
    const noise = bob.logs.filter((l) => /Failed to fetch|discovery/.test(l));
    assert.deepEqual(noise, [], "no background fetch failed while offline");
  });
}
