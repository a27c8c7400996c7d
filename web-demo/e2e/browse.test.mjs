// "Browse channels": a group its admin makes findable by the organization (scope, in the
// settings panel) shows in another account's Browse dialog with its member count, and Join
// makes that account a member (the conversation opens, the count goes up); once the admin
// requires approval, the dialog offers "Ask to join" instead and the request reaches the
// admin's members panel. A private group is never listed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  closePanel,
  createGroup,
  launchBrowser,
  openUser,
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

/** The discovery listing for `q`, as `user` sees it over REST (to wait for the server). */
async function discovered(page, user, q) {
  return page.evaluate(
    async ({ user, q }) => {
      const { token } = await (await fetch(`/demo/token?user=${user}`)).json();
      const res = await fetch(`/v1/conversations/discover?q=${encodeURIComponent(q)}`, {
        headers: { authorization: `Bearer ${token}` },
      });
      return (await res.json()).conversations ?? [];
    },
    { user, q },
  );
}

/** Opens Browse on `page` and searches `q`; returns the row of `conv`. */
async function browse(page, q, conv) {
  await toList(page);
  await page.click("button[data-action=browse]");
  await page.fill("dialog.browse input[name=q]", q);
  const row = page.locator(`dialog.browse .browse-item[data-conv="${conv}"]`);
  await row.waitFor({ timeout: WAIT_MS });
  return row;
}

async function setChoice(page, key, value) {
  await page.selectOption(`#setting-${key}`, value);
  // Drawn again from the conversation once the intent is written: the choice is its state.
  await page.waitForSelector(`#setting-${key} option[value=${value}][selected]`, { state: "attached", timeout: WAIT_MS });
}

for (const size of SIZES) {
  test(`${size.name}: a group found in Browse is joined, or asked to join`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} browse`);
    const alice = await openUser(browser, server.base, "alice", size);
    const bob = await openUser(browser, server.base, "bob", size);
    const dave = await openUser(browser, server.base, "dave", size);
    t.after(async () => {
      for (const page of [alice, bob, dave]) await page.context().close();
      for (const page of [alice, bob, dave]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
    });
    const title = `Town square ${size.name}`;
    const hidden = await createGroup(alice, `Town back room ${size.name}`, []);
    const conv = await createGroup(alice, title, []);
    await alice.click("button[data-action=settings]");
    await setChoice(alice, "join_policy", "open");
    await setChoice(alice, "scope", "organization");
    await closePanel(alice);
    // Alice's intents reach the server as she makes them; the listing follows their commit.
    await until(bob, "the group listed", () => discovered(bob, "bob", title), (l) => l.length === 1);

    const row = await browse(bob, `town`, conv);
    assert.equal(await bob.locator(`dialog.browse .browse-item[data-conv="${hidden}"]`).count(), 0, "a private group is listed");
    assert.equal(await row.locator(".count").textContent(), "1 member");
    const join = row.locator("button[data-action=join]");
    assert.equal(await join.textContent(), "Join");
    await shot(bob, "found");
    await join.click();
    // Joined: the dialog closes on the conversation, which the server now sends bob.
    await bob.waitForSelector(`.center .main[data-conv="${conv}"] .composer textarea`, { timeout: WAIT_MS });
    await toList(bob);
    await bob.locator(`.conv-item[data-conv="${conv}"]`).waitFor({ timeout: WAIT_MS });
    const again = await browse(bob, title, conv);
    await until(bob, "the count after joining", () => again.locator(".count").textContent(), (text) => text === "2 members");
    assert.equal(await again.locator("button[data-action=open]").textContent(), "Open");
    await shot(bob, "joined");
    await bob.click("dialog.browse .buttons button");

    // With approval required, dave asks instead; alice sees the request.
    await openConversationOf(alice, conv);
    await alice.click("button[data-action=settings]");
    await alice.check("#setting-join_approval_required");
    await alice.waitForSelector("#setting-join_approval_required:checked", { timeout: WAIT_MS });
    await closePanel(alice);
    await until(dave, "asking offered", () => discovered(dave, "dave", title), (l) => l[0]?.join === "request");
    const daveRow = await browse(dave, title, conv);
    const ask = daveRow.locator("button[data-action=ask]");
    assert.equal(await ask.textContent(), "Ask to join");
    await ask.click();
    await daveRow.locator("button[data-action=requested]:disabled").waitFor({ timeout: WAIT_MS });
    await shot(dave, "requested");
    await alice.click("button[data-action=members]");
    await alice.waitForSelector('.member[data-account="dave"][data-status=requested]', { timeout: WAIT_MS });
  });
}

/** Back to `conv` on `page` (on a phone the list shows after the settings panel closed). */
async function openConversationOf(page, conv) {
  await toList(page);
  await page.click(`.conv-item[data-conv="${conv}"]`);
  await page.waitForSelector(`.center .main[data-conv="${conv}"]`, { timeout: WAIT_MS });
}
