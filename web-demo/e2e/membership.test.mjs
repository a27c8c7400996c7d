// Told, not polled: a group another account creates appears in the member's list as soon as
// it is created, without the page asking the server's REST list (no `/v1/` request at all);
// a removal shows in the open conversation without the removed member doing anything; and
// offline, nothing is fetched in the background (no "Failed to fetch" in the console). And who
// asks to join a group its admin opened to requests (in the settings panel) is approved or
// declined in the members panel.
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
  until,
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
      // The bell reads its count over REST by design (after arrivals, and once a minute).
      if (path.startsWith("/v1/") && path !== "/v1/notifications") asked.push(path);
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

/** `method path` as `user`, from `page` (a demo token from the server), with a JSON body. */
async function rest(page, user, method, path, body) {
  return page.evaluate(
    async ({ user, method, path, body }) => {
      const { token } = await (await fetch(`/demo/token?user=${user}`)).json();
      const res = await fetch(path, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, text: await res.text() };
    },
    { user, method, path, body },
  );
}

for (const size of SIZES) {
  test(`${size.name}: who asks to join is approved or declined in the members panel`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} join requests`);
    const alice = await openUser(browser, server.base, "alice", size);
    const bob = await openUser(browser, server.base, "bob", size);
    const dave = await openUser(browser, server.base, "dave", size);
    t.after(async () => {
      for (const page of [alice, bob, dave]) await page.context().close();
      for (const page of [alice, bob, dave]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
    });
    const conv = await createGroup(alice, "Ask first", ["carol"]);
    // Alice opens the group to requests in its settings panel, and renames it there. She
    // types the new title first: each setting below draws the panel again, and what she
    // typed (not saved yet) survives that.
    await alice.click("button[data-action=settings]");
    await alice.fill("#info-title", "Ask first, please");
    await alice.selectOption("#setting-join_policy", "open");
    // Drawn again from the conversation once the intent is written: the choice is its state.
    await alice.waitForSelector("#setting-join_policy option[value=open][selected]", { state: "attached", timeout: WAIT_MS });
    await alice.check("#setting-join_approval_required");
    await alice.waitForSelector("#setting-join_approval_required:checked", { timeout: WAIT_MS });
    assert.equal(await alice.inputValue("#info-title"), "Ask first, please", "the typed title survived the redraws");
    await alice.click("button[data-action=save-title]");
    await alice.waitForSelector('#conv-title:text-is("Ask first, please")', { timeout: WAIT_MS });
    await shot(alice, "settings");
    await closePanel(alice);
    // Asking is REST (the asker holds no replica); it works once alice's settings reached
    // the server (her intents are sent as she makes them).
    for (const [page, user] of [
      [bob, "bob"],
      [dave, "dave"],
    ]) {
      const asked = await until(
        page,
        `${user}'s request taken`,
        () => rest(page, user, "POST", `/v1/conversations/${conv}/join-requests`),
        (r) => r.status === 202,
      );
      assert.equal(asked.status, 202, asked.text);
    }

    // Alice is pushed both requests: they wait in her members panel, with the answers.
    await alice.click("button[data-action=members]");
    const request = (who) => alice.locator(`.member[data-account="${who}"][data-status=requested]`);
    await request("bob").waitFor({ timeout: WAIT_MS });
    await request("dave").waitFor({ timeout: WAIT_MS });
    await shot(alice, "requests");
    await request("bob").locator("button[data-action=approve]").click();
    await request("dave").locator("button[data-action=decline]").click();
    await alice.waitForSelector('.member[data-account="bob"][data-status=active]', { timeout: WAIT_MS });
    await alice.waitForSelector('.member[data-account="dave"][data-status=removed]', { timeout: WAIT_MS });
    await closePanel(alice);

    // Bob is told he is in (his membership feed): the group shows in his list and he posts.
    await say(alice, "Welcome, Bob");
    await openConversation(bob, conv);
    await bob.waitForSelector(`.center .msg-body:text-is("Welcome, Bob")`, { timeout: WAIT_MS });
    await say(bob, "Thanks");
    // Dave was declined: nothing of the group reaches him, and he cannot ask again himself.
    assert.equal(await dave.locator(`.conv-item[data-conv="${conv}"]`).count(), 0);
    const again = await rest(dave, "dave", "POST", `/v1/conversations/${conv}/join-requests`);
    assert.equal(again.status, 403, again.text);
    assert.match(again.text, /member_inactive/);
  });
}
