// Encrypted conversations through ordinary lives (docs/E2EE.md, "Joining" and "Leaving"), in
// the demo in Chromium: dave, added to an encrypted group before he ever signed in, reads what
// alice says once he has; alice's browser storage cleared (a new device) while no other device
// of hers is online, she reads new messages in her encrypted conversations again (bob's device
// adds the new one); after bob leaves, alice's very next message is accepted, read by
// carol and not by bob; and bob's new device is told in the timeline of both alice's and
// bob's pages, right before the same message, with the safety number changed alike.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  closePanel,
  createGroup,
  deviceReady,
  launchBrowser,
  openConversation,
  openUser,
  outbox,
  say,
  screenshots,
  startServer,
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

/** The devices in `conv`'s group as `page`'s own device holds it (`undefined`: not in it). */
const groupDevices = (page, conv) => page.evaluate((c) => window.confabDemo.session.client.groupDevices(c), conv);

/** Waits until `page`'s device is in `conv`'s group. */
const inGroup = (page, conv) => until(page, `its device in ${conv}'s group`, (p) => groupDevices(p, conv), (d) => Array.isArray(d));

const shows = (page, text) => page.waitForSelector(`.center .msg-body:text-is("${text}")`, { timeout: WAIT_MS });

/** Each page's errors, checked as it closes. */
function closing(t, pages) {
  t.after(async () => {
    for (const page of pages) await page.context().close().catch(() => {});
    for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
}

test("dave, added to an encrypted group before he ever signed in, reads once he signs in", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee late joiner");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const pages = [alice, bob];
  closing(t, pages);
  for (const page of pages) await deviceReady(page);
  const conv = await createGroup(alice, "Latecomers", ["bob", "dave"], { encrypted: true });
  await say(alice, "before dave");
  await openConversation(bob, conv);
  await shows(bob, "before dave");

  const dave = await openUser(browser, server.base, "dave");
  pages.push(dave);
  await deviceReady(dave);
  await openConversation(dave, conv);
  // His device said it waits; the group's committer added it.
  await inGroup(dave, conv);
  await say(alice, "hello dave");
  await shows(dave, "hello dave");
  const earlier = dave.locator('.center .msg-body.undecryptable[data-unreadable="before_join"]');
  await earlier.waitFor({ timeout: WAIT_MS });
  assert.equal(await earlier.count(), 1, "what alice said before is marked sent before he joined");
  await shot(dave, "reads after joining");
});

test("alice's cleared browser is a new device that reads her encrypted conversations again", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee new device");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const pages = [alice, bob];
  closing(t, pages);
  for (const page of pages) await deviceReady(page);
  const vault = await createGroup(alice, "Vault", ["bob"], { encrypted: true });
  const attic = await createGroup(alice, "Attic", ["bob"], { encrypted: true });
  await openConversation(bob, vault);
  await openConversation(bob, attic);

  // Her storage gone (a fresh browser context) and her old device never back.
  await alice.context().close();
  const fresh = await openUser(browser, server.base, "alice");
  pages.push(fresh);
  await deviceReady(fresh);
  for (const [conv, text] of [
    [vault, "vault after the reset"],
    [attic, "attic after the reset"],
  ]) {
    await openConversation(fresh, conv);
    await inGroup(fresh, conv);
    await openConversation(bob, conv);
    await say(bob, text);
    await openConversation(fresh, conv);
    await shows(fresh, text);
  }
  await shot(fresh, "reads again");
});

test("bob leaves, and alice's very next message is accepted and read by carol only", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee leaving");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const carol = await openUser(browser, server.base, "carol");
  const pages = [alice, bob, carol];
  closing(t, pages);
  for (const page of pages) await deviceReady(page);
  const conv = await createGroup(alice, "Leavers", ["bob", "carol"], { encrypted: true });
  for (const page of [bob, carol]) {
    await openConversation(page, conv);
    await inGroup(page, conv);
  }
  await say(alice, "all three");
  await shows(bob, "all three");

  await bob.click("button[data-action=members]");
  await bob.click("button[data-action=leave]");
  // The group's committer commits his removal on seeing him go.
  await until(alice, "bob's device out of the group", (p) => groupDevices(p, conv), (d) => Array.isArray(d) && !d.some((id) => id.split("/")[1] === "bob"));

  await say(alice, "after bob");
  await until(alice, "alice's message accepted", outbox, (rows) => rows.length === 0);
  await shows(carol, "after bob");
  const onBobs = await bob.$$eval(".msg-body", (els) => els.map((el) => el.textContent));
  assert.ok(!onBobs.includes("after bob"), "bob's device cannot read it");
  await shot(carol, "read after bob left");
});

/** alice's verified mark of bob in the members panel (open). */
const verification = (page) => page.locator(`.safety[data-safety="bob"] [data-verification]`).getAttribute("data-verification");

/** The safety number with `peer` in the members panel (open). */
const safety = (page, peer) =>
  until(page, `the safety number with ${peer}`, (p) => p.locator(`.safety[data-safety="${peer}"] .digits`).textContent(), (text) => /\d{5}$/.test(text));

/** What stands right after each key-change notice of the timeline: [words, the next message's body]. */
const notices = (page) =>
  page.$$eval(".center .timeline .key-change", (els) =>
    els.map((el) => [el.dataset.keyChange, el.dataset.account, el.textContent, el.nextElementSibling?.querySelector(".msg-body")?.textContent ?? null]),
  );

test("bob's new device: the notice on alice's and bob's pages at the same place, the safety number changed", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee key change");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const pages = [alice, bob];
  closing(t, pages);
  for (const page of pages) await deviceReady(page);
  const conv = await createGroup(alice, "Keys", ["bob"], { encrypted: true });
  await openConversation(bob, conv);
  await inGroup(bob, conv);
  await say(alice, "before the tablet");
  await shows(bob, "before the tablet");
  // The creation told nothing: bob's account joined, no device of a member changed.
  assert.deepEqual(await notices(alice), []);
  await alice.click("button[data-action=members]");
  const before = await safety(alice, "bob");
  // alice has compared with bob and marks him verified.
  await alice.click(`.safety[data-safety="bob"] button[data-verification]`);
  await until(alice, "bob marked verified", verification, (state) => state === "verified");
  await closePanel(alice);

  // bob signs in on a second browser: a member's device commits it in.
  const tablet = await openUser(browser, server.base, "bob");
  pages.push(tablet);
  await deviceReady(tablet);
  const device = await tablet.evaluate(() => window.confabDemo.session.client.deviceId);
  await openConversation(tablet, conv);
  await inGroup(tablet, conv);
  const words = `🔑 bob added a device (${device})`;
  for (const page of [alice, bob]) {
    const shown = await until(page, "the notice of bob's new device", notices, (n) => n.length === 1);
    assert.deepEqual(shown, [["device_added", "bob", words, null]], `${page.user}'s page`);
  }
  // Said after it: the notice stands right before that message on both pages.
  await say(alice, "after the tablet");
  await shows(bob, "after the tablet");
  for (const page of [alice, bob]) {
    const shown = await until(page, "the notice before the message sent after it", notices, (n) => n[0]?.[3] === "after the tablet");
    assert.deepEqual(shown, [["device_added", "bob", words, "after the tablet"]], `${page.user}'s page`);
  }
  await shot(alice, "notice");

  // The safety number moved with bob's devices, and still reads the same on both sides.
  await alice.click("button[data-action=members]");
  const onAlices = await until(alice, "the safety number after the tablet", (p) => safety(p, "bob"), (text) => text !== before);
  // The tablet turned alice's mark of bob to "changed": compare again.
  assert.equal(await verification(alice), "changed");
  await bob.click("button[data-action=members]");
  const onBobs = await safety(bob, "alice");
  assert.equal(onAlices, onBobs, "alice and bob see the same safety number");
  await shot(alice, "safety number after");
});
