// The notification bell: bob's message answered by alice (a reply) shows as one unread on
// bob's bell, the bell's dialog lists it with its text, opening it shows the conversation,
// and "Mark all read" clears the badge. The feed is the server's (REST), computed after the
// commit (docs/NOTIFICATIONS.md).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  createGroup,
  launchBrowser,
  openConversation,
  openUser,
  say,
  screenshots,
  SIZES,
  startServer,
  toList,
  until,
  WAIT_MS,
} from "./harness.mjs";

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

for (const size of SIZES) {
  test(`${size.name}: a reply rings bob's bell until he reads it`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} bell`);
    const alice = await openUser(browser, server.base, "alice", size);
    const bob = await openUser(browser, server.base, "bob", size);
    t.after(async () => {
      for (const page of [alice, bob]) await page.context().close();
      for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
    });
    const conv = await createGroup(alice, `Lunch ${size.name}`, ["bob"]);
    await openConversation(bob, conv);
    await say(bob, `Lunch at noon? ${size.name}`);

    // Alice answers bob's message with the reply button.
    const his = alice.locator(".center .msg[data-author=bob]").first();
    await his.waitFor({ timeout: WAIT_MS });
    await his.hover();
    await his.locator("button[data-action=reply]").click();
    const answer = `Yes, see you there ${size.name}`;
    await say(alice, answer);

    await toList(bob);
    const bell = bob.locator("#bell");
    await until(bob, "the bell's count", () => bell.getAttribute("data-unread"), (n) => n === "1");
    assert.equal(await bell.locator(".badge").textContent(), "1");
    await shot(bob, "ringing");
    await bell.click();
    const item = bob.locator(`dialog.notifications li.notification[data-kind=reply][data-conv="${conv}"]`);
    await item.waitFor({ timeout: WAIT_MS });
    assert.match(await item.textContent(), new RegExp(answer));
    assert.match(await item.getAttribute("class"), /unread/);
    // Alice is told of bob's message (the level all). At least one: the sizes share a
    // server, and alice's entry of the other size's run stays unread.
    await until(alice, "alice's bell", () => alice.locator("#bell").getAttribute("data-unread"), (n) => Number(n) >= 1);

    await bob.click("dialog.notifications button[data-action=read-all]");
    await bob.locator(`dialog.notifications li.notification[data-conv="${conv}"]:not(.unread)`).waitFor({ timeout: WAIT_MS });
    assert.equal(await bell.getAttribute("data-unread"), "0");
    assert.equal(await bell.locator(".badge").isHidden(), true);
    await shot(bob, "read");
    await item.click();
    await bob.waitForSelector(`.center .main[data-conv="${conv}"]`, { timeout: WAIT_MS });
  });
}
