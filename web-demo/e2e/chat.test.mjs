// The web demo end to end: real users' pages (one fresh Chromium context each) talking
// through a real confab-server. Each step leaves a screenshot in artifacts/e2e/<test>/.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  bodies,
  createGroup,
  launchBrowser,
  openConversation,
  openUser,
  outbox,
  say,
  screenshots,
  setOfflineSwitch,
  startServer,
  timeline,
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

/** Every page of a test, closed (and checked for page errors) at its end. */
async function users(t, ...names) {
  const pages = [];
  for (const name of names) pages.push(await openUser(browser, server.base, name));
  t.after(async () => {
    for (const page of pages) await page.context().close();
    for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  return pages;
}

const mineAccepted = (items, texts) => texts.every((t) => items.some((m) => m.body === t && m.status === "accepted"));

test("two users chat both ways", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("two users chat both ways");
  const [alice, bob] = await users(t, "alice", "bob");
  const conv = await createGroup(alice, "Both ways", ["bob"]);
  await say(alice, "Hi Bob, lunch at noon?");
  await until(alice, "alice's message accepted", timeline, (m) => mineAccepted(m, ["Hi Bob, lunch at noon?"]));
  await shot(alice, "sent");

  // Bob learns about the group from the server (he did not create it) and sees it unread.
  const item = bob.locator(`.conv-item[data-conv="${conv}"]`);
  await item.waitFor({ timeout: WAIT_MS });
  await until(bob, "the unread badge", () => item.locator(".badge.unread").textContent().catch(() => ""), (n) => n === "1");
  assert.match(await item.locator(".conv-preview").textContent(), /Hi Bob, lunch at noon\?/);
  await shot(bob, "unread");

  await openConversation(bob, conv);
  await say(bob, "Sure, see you there!");
  await until(alice, "bob's answer", bodies, (b) => b.includes("Sure, see you there!"));
  await say(alice, "Great");
  await say(bob, "👍");
  const expected = ["Hi Bob, lunch at noon?", "Sure, see you there!", "Great", "👍"];
  await until(alice, "all four messages", bodies, (b) => b.length === 4);
  await until(bob, "all four messages", bodies, (b) => b.length === 4);
  for (const page of [alice, bob]) {
    const items = await until(page, "every message accepted", timeline, (m) => m.every((x) => x.status === "accepted"));
    assert.deepEqual(items.map((m) => m.body), expected, `${page.user}'s timeline`);
    assert.deepEqual(
      items.map((m) => m.author),
      ["alice", "bob", "alice", "bob"],
      `${page.user} shows who wrote what`,
    );
  }
  // Read markers travel too: each sees that the other read up to the end.
  await until(alice, "bob's read marker", (p) => p.locator(".center .seen").allTextContents(), (s) => s.some((x) => /Bob/.test(x)));
  await shot(alice, "conversation");
  await shot(bob, "conversation");
});

test("offline: B sends 5, A sends 3, both end with the same 8 in the same order", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("offline convergence");
  const [alice, bob] = await users(t, "alice", "bob");
  const conv = await createGroup(alice, "Offline and back", ["bob"]);
  await openConversation(bob, conv);

  // Both ways of losing the network: the page's switch and the browser's.
  await setOfflineSwitch(bob, true);
  await bob.context().setOffline(true);
  const fromBob = ["B1", "B2", "B3", "B4", "B5"].map((b) => `${b} written offline`);
  for (const text of fromBob) await say(bob, text);
  const queued = await timeline(bob);
  assert.deepEqual(queued.map((m) => m.status), Array(5).fill("pending"), "bob's messages wait, marked pending");
  const box = await outbox(bob);
  assert.deepEqual(
    box.filter((o) => o.type === "send").map((o) => o.state),
    Array(5).fill("pending"),
    "the outbox shows the 5 waiting",
  );
  await shot(bob, "offline-queued");

  const fromAlice = ["A1 while bob is away", "A2 while bob is away", "A3 while bob is away"];
  for (const text of fromAlice) await say(alice, text);
  await until(alice, "alice's 3 accepted", timeline, (m) => mineAccepted(m, fromAlice));
  assert.deepEqual(await bodies(alice), fromAlice, "nothing of bob's reached alice while he is offline");
  await shot(alice, "online-while-bob-away");

  await bob.context().setOffline(false);
  await setOfflineSwitch(bob, false);
  const everything = [...fromAlice, ...fromBob]; // server order: alice's were accepted first
  for (const page of [alice, bob]) {
    const items = await until(
      page,
      "all 8 accepted",
      timeline,
      (m) => m.length === 8 && m.every((x) => x.status === "accepted"),
    );
    assert.deepEqual(items.map((m) => m.body), everything, `${page.user} shows the 8 in server order`);
  }
  await until(bob, "an empty outbox", outbox, (o) => o.length === 0);
  await shot(alice, "converged");
  await shot(bob, "converged");
});

test("removed while offline: C's queued messages are refused with the reason and reach nobody", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("removed while offline");
  const [alice, bob, carol] = await users(t, "alice", "bob", "carol");
  const conv = await createGroup(alice, "Project room", ["bob", "carol"]);
  await say(alice, "Welcome, both of you");
  await openConversation(bob, conv);
  await openConversation(carol, conv);
  await until(carol, "the welcome", bodies, (b) => b.includes("Welcome, both of you"));

  // Bob, a member, may not remove Carol: the control is disabled and says why.
  await bob.click("button[data-action=members]");
  const bobsRemove = bob.locator('.member[data-account="carol"] button[data-action=remove]');
  await bobsRemove.waitFor({ timeout: WAIT_MS });
  assert.equal(await bobsRemove.isDisabled(), true, "bob cannot remove carol");
  assert.match(await bob.locator('.member[data-account="carol"] .why').first().textContent(), /role_too_high|no_permission/);
  await shot(bob, "members-panel-denied");

  await setOfflineSwitch(carol, true);
  const queued = ["C1 written while removed", "C2 written while removed"];
  for (const text of queued) await say(carol, text);
  await shot(carol, "offline-queued");

  await alice.click("button[data-action=members]");
  const remove = alice.locator('.member[data-account="carol"] button[data-action=remove]');
  await remove.waitFor({ timeout: WAIT_MS });
  assert.equal(await remove.isDisabled(), false, "the owner may remove carol");
  await remove.click();
  await alice.waitForSelector('.member[data-account="carol"][data-status=removed]', { timeout: WAIT_MS });
  await shot(alice, "carol-removed");

  await setOfflineSwitch(carol, false);
  const refused = await until(
    carol,
    "both queued messages refused",
    timeline,
    (m) => queued.every((q) => m.some((x) => x.body === q && x.status === "rejected")),
  );
  for (const text of queued) {
    const message = refused.find((m) => m.body === text);
    assert.match(message.reason, /^Not delivered: .+ \([a-z_]+\)/, `${text} says why it was refused`);
  }
  // The first is refused for the removal itself. (The second, built on the first, may be
  // refused for its missing dependency instead: see web-demo/README.md.)
  assert.match(refused.find((m) => m.body === queued[0]).reason, /removed.*\(member_inactive\)/);
  const box = await outbox(carol);
  assert.equal(box.filter((o) => o.state === "rejected").length, 2, "the outbox keeps both refusals");
  await shot(carol, "refused");

  // A message sent after carol's arrives for bob: anything of carol's would have arrived too.
  await say(alice, "Carol has left the project");
  await until(bob, "alice's last message", bodies, (b) => b.includes("Carol has left the project"));
  for (const page of [alice, bob]) {
    const seen = await bodies(page);
    for (const text of queued) assert.ok(!seen.includes(text), `${page.user} never sees "${text}"`);
  }
  await shot(alice, "nothing-from-carol");
  await shot(bob, "nothing-from-carol");
});

test("a reload while offline keeps the history and the outbox", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("reload while offline");
  const [alice, dave] = await users(t, "alice", "dave");
  const conv = await createGroup(alice, "Keep it", ["dave"]);
  await say(alice, "History one");
  await say(alice, "History two");
  await openConversation(dave, conv);
  await until(dave, "the history", bodies, (b) => b.length === 2);

  await dave.waitForSelector("html[data-offline-shell=ready]", { timeout: WAIT_MS });
  // Every file of the build's list is kept, the wasm module included (it was once missed
  // when its download was still running as the service worker started).
  const notKept = await dave.evaluate(async () => {
    const files = await (await fetch("shell.json")).json();
    const missing = [];
    for (const file of files) if (!(await caches.match(new URL(file, location.href).href))) missing.push(file);
    return { count: files.length, missing };
  });
  assert.ok(notKept.count > 20 && notKept.missing.length === 0, `the offline shell: ${JSON.stringify(notKept)}`);
  await setOfflineSwitch(dave, true);
  await say(dave, "Queued before the reload");
  await say(dave, "Also queued");
  await dave.context().setOffline(true);
  await shot(dave, "before-reload");

  // No network at all: the page itself comes from the service worker's copy, the history
  // and the outbox from IndexedDB.
  await dave.reload();
  await dave.waitForSelector(`.center .main[data-conv="${conv}"]`, { timeout: WAIT_MS });
  const items = await until(dave, "the stored timeline", timeline, (m) => m.length === 4);
  assert.deepEqual(
    items.map((m) => [m.body, m.status]),
    [
      ["History one", "accepted"],
      ["History two", "accepted"],
      ["Queued before the reload", "pending"],
      ["Also queued", "pending"],
    ],
  );
  assert.equal(await dave.locator("#connection").getAttribute("data-state"), "offline");
  const box = await outbox(dave);
  assert.deepEqual(
    box.filter((o) => o.type === "send").map((o) => o.state),
    ["pending", "pending"],
    "the outbox survived the reload",
  );
  await shot(dave, "after-reload");

  await dave.context().setOffline(false);
  await setOfflineSwitch(dave, false);
  await until(alice, "dave's queued messages", bodies, (b) => b.includes("Also queued"));
  assert.deepEqual(await bodies(alice), ["History one", "History two", "Queued before the reload", "Also queued"]);
  await until(dave, "an empty outbox", outbox, (o) => o.length === 0);
  await shot(alice, "delivered");
  await shot(dave, "delivered");
});
