// End-to-end encryption in the demo: a group made with the dialog's lock toggle shows its
// lock in the list and the header of every member; what its members say is read on their
// pages; a member added later sees what was said before she joined as a message her device
// cannot read (shown, with why, not dropped) and reads everything after. A direct
// conversation opened with the lock toggle is the pair's encrypted one, read both ways, and a
// message of it is not forwarded into a plain conversation (the refusal in words). The devices
// panel lists the account's devices: a second browser signed in as the same user is a second
// device, and each page marks its own. Two members see the same safety number in the members
// panel, and one marks the other verified.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  bodies,
  closePanel,
  createGroup,
  deviceReady,
  devicesShown,
  forward,
  launchBrowser,
  openConversation,
  openDirect,
  openUser,
  outbox,
  say,
  screenshots,
  showDevices,
  SIZES,
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

/** In encrypted conversation `conv`, which `a` shows: both see its lock in the list and the
 * header, `b` reads what `a` says and `a` reads `b`'s answer. */
async function bothRead(a, b, conv, said, answer) {
  await a.waitForSelector("#encrypted", { timeout: WAIT_MS });
  await a.locator(`.conv-item[data-conv="${conv}"] .e2ee`).waitFor({ timeout: WAIT_MS });
  await say(a, said);
  await openConversation(b, conv);
  await b.locator(`.conv-item[data-conv="${conv}"] .e2ee`).waitFor({ timeout: WAIT_MS });
  await b.waitForSelector("#encrypted", { timeout: WAIT_MS });
  await b.waitForSelector(`.center .msg-body:text-is("${said}")`, { timeout: WAIT_MS });
  await say(b, answer);
  await a.waitForSelector(`.center .msg-body:text-is("${answer}")`, { timeout: WAIT_MS });
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
  await bothRead(alice, bob, conv, "sealed before carol", "bob answers");
  await shot(bob, "read");

  // The safety number alice and bob compare out loud: the same digits on both pages.
  const safety = (page, peer) =>
    until(page, `the safety number with ${peer}`, (p) => p.locator(`.safety[data-safety="${peer}"] .digits`).textContent(), (text) => /\d{5}$/.test(text));
  await bob.click("button[data-action=members]");
  const onBobs = await safety(bob, "alice");
  await closePanel(bob);
  await alice.click("button[data-action=members]");
  const onAlices = await safety(alice, "bob");
  assert.match(onAlices, /^🔑 (\d{5} ){11}\d{5}$/);
  assert.equal(onAlices, onBobs, "alice and bob see the same safety number");
  // Having compared, alice marks bob verified on her device.
  const mark = (page, peer) => page.locator(`.safety[data-safety="${peer}"] [data-verification]`).getAttribute("data-verification");
  assert.equal(await mark(alice, "bob"), "unverified");
  await alice.click(`.safety[data-safety="bob"] button[data-verification]`);
  await until(alice, "bob marked verified", (p) => mark(p, "bob"), (state) => state === "verified");
  await shot(alice, "safety number");

  // Carol is added: her device joins from its Welcome and reads from then on.
  await alice.selectOption("#add-member-account", "carol");
  await alice.click("button[data-action=add]");
  await alice.waitForSelector('.member[data-account="carol"]', { timeout: WAIT_MS });
  // Only alice's and bob's devices make their number: carol's joining leaves it.
  assert.equal(await safety(alice, "bob"), onAlices);
  assert.equal(await mark(alice, "bob"), "verified", "carol's joining leaves bob verified");
  await closePanel(alice);
  await openConversation(carol, conv);
  await say(alice, "welcome carol");
  await carol.waitForSelector(`.center .msg-body:text-is("welcome carol")`, { timeout: WAIT_MS });
  // Said for what it is: sent before her device joined, for good (not "not opened yet").
  const before = "🔐 This message cannot be read on this device (sent before this device joined)";
  const unread = await until(carol, "the earlier messages shown as sent before she joined", undecryptable, (shown) => shown.length === 2 && shown.every((text) => text === before));
  assert.deepEqual(unread, [before, before]);
  const shown = await carol.$$eval(".center .timeline .msg-body", (els) => els.map((el) => el.textContent));
  assert.ok(!shown.includes("sealed before carol"), "carol reads nothing from before she joined");
  await shot(carol, "joined later");
});

test("an encrypted direct conversation from the dialog: lock on both sides, read both ways, not forwarded into the clear", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("e2ee direct");
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const pages = [alice, bob];
  t.after(async () => {
    for (const page of pages) await page.context().close();
    for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  for (const page of pages) await deviceReady(page);
  // The plain group the forward below aims at, with a message of its own, and an encrypted
  // one.
  const room = await createGroup(alice, "Open room", ["bob"]);
  await say(alice, "from the open room");
  const vault = await createGroup(alice, "Vault", ["bob"], { encrypted: true });

  const conv = await openDirect(alice, "bob", { encrypted: true });
  await bothRead(alice, bob, conv, "just between us", "agreed, sealed");
  await shot(bob, "read");

  // Bob's answer forwarded into the plain group: refused on the device, said in the dialog.
  await forward(alice, "agreed, sealed", room);
  const refusal = alice.locator("dialog .denied");
  await until(alice, "the forward's refusal", () => refusal.textContent(), (text) => text.length > 0);
  assert.equal(
    await refusal.textContent(),
    "A message of an end-to-end encrypted conversation cannot be forwarded into Open room, which is not encrypted",
  );
  assert.equal(await refusal.getAttribute("data-code"), "forward_out_of_encrypted");
  await shot(alice, "forward refused");
  await alice.click("dialog button:text-is('Cancel')");
  assert.deepEqual(
    (await outbox(alice)).filter((row) => row.type === "send"),
    [],
    "nothing waits to be sent",
  );
  await openConversation(alice, room);
  assert.deepEqual(await bodies(alice), ["from the open room"], "the plain group holds no copy");

  // The other way, out of the clear into the encrypted conversation, it goes (sealed there).
  await forward(alice, "from the open room", conv);
  await alice.waitForSelector("dialog", { state: "detached", timeout: WAIT_MS });
  const copy = bob.locator(".center .msg").filter({ has: bob.locator('.msg-body:text-is("from the open room")') });
  await copy.locator(".forwarded").waitFor({ timeout: WAIT_MS });
  assert.equal(await copy.getAttribute("data-author"), "alice", "the copy is alice's message");
  await shot(bob, "forwarded into encryption");

  // From one encrypted conversation into another: the copy carries what alice's device
  // opened, sealed again for the vault's group, and bob reads it there.
  await openConversation(alice, conv);
  await forward(alice, "agreed, sealed", vault);
  await alice.waitForSelector("dialog", { state: "detached", timeout: WAIT_MS });
  await openConversation(bob, vault);
  const sealedCopy = bob.locator(".center .msg").filter({ has: bob.locator('.msg-body:text-is("agreed, sealed")') });
  await sealedCopy.locator(".forwarded").waitFor({ timeout: WAIT_MS });
  assert.equal(await sealedCopy.getAttribute("data-author"), "alice", "the sealed copy is alice's message");

  // The plain direct conversation is another one, without the lock.
  const plain = await openDirect(alice, "bob");
  assert.notEqual(plain, conv);
  assert.equal(await alice.locator("#encrypted").count(), 0, "the plain one is not encrypted");
});

for (const size of SIZES) {
  test(`${size.name}: the devices panel lists the account's devices, each page marking its own`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} devices`);
    // Dave, twice: two browser contexts are two devices (each store makes its device id).
    const first = await openUser(browser, server.base, "dave", size);
    const pages = [first];
    t.after(async () => {
      for (const page of pages) await page.context().close();
      for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
    });
    const idOf = (page) => page.evaluate(() => window.confabDemo.session.client.deviceId);
    const one = await idOf(first);
    await deviceReady(first);
    await showDevices(first);
    const alone = await until(first, "its own device listed", devicesShown, (rows) => rows.some((r) => r.device === one && r.keyPackages === "20 key packages left"));
    assert.deepEqual(alone.filter((r) => r.thisDevice).map((r) => r.device), [one], "only its own device is marked");
    const mine = alone.find((r) => r.device === one);
    assert.equal(mine.marked, "this device");
    assert.match(mine.registered, /^Registered \S/);
    assert.doesNotMatch(mine.registered, /not known/);
    assert.match(mine.lastSeen, /^Last seen \S/);
    assert.doesNotMatch(mine.lastSeen, /not known/);
    await shot(first, "one device");

    const second = await openUser(browser, server.base, "dave", size);
    pages.push(second);
    const two = await idOf(second);
    assert.notEqual(two, one, "a second browser is a second device");
    await deviceReady(second);
    await showDevices(second);
    const seen = await until(second, "both devices listed", devicesShown, (rows) => [one, two].every((d) => rows.some((r) => r.device === d)));
    assert.deepEqual(seen.filter((r) => r.thisDevice).map((r) => r.device), [two], "the second page marks itself");
    await shot(second, "two devices");

    // The first page learns of the second from ↻ Refresh.
    assert.ok(!(await devicesShown(first)).some((r) => r.device === two), "not listed before it is asked");
    await first.click("button[data-action=refresh-devices]");
    const after = await until(first, "the second device after refresh", devicesShown, (rows) => rows.some((r) => r.device === two));
    assert.deepEqual(after.filter((r) => r.thisDevice).map((r) => r.device), [one], "the first page still marks only itself");
    assert.equal(after.find((r) => r.device === two).marked, null);
    await shot(first, "refreshed");

    // Only other devices can be removed; removing the second takes it off the list.
    assert.equal(await first.locator(`#devices .device[data-device="${one}"] button[data-action=remove-device]`).count(), 0);
    await first.click(`#devices .device[data-device="${two}"] button[data-action=remove-device]`);
    // (Dave's devices of the other sizes' runs stay listed: the server is shared.)
    const removed = await until(first, "the second device removed", devicesShown, (rows) => !rows.some((r) => r.device === two));
    assert.ok(removed.some((r) => r.device === one && r.thisDevice), "the first stays");
    await second.click("button[data-action=refresh-devices]");
    const itsOwn = await until(second, "the removed device's list", devicesShown, (rows) => !rows.some((r) => r.device === two));
    assert.ok(itsOwn.some((r) => r.device === one), "it lists the others, not itself");
    await shot(first, "removed");
  });
}
