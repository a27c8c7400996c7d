// Presence between two browsers through the real server: bob's dot in alice's members panel
// is green while bob's page has the focus, amber once it loses it (blur), grey once bob's tab
// is closed (the server's `offline` when his last connection goes).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { createGroup, launchBrowser, openConversation, openUser, screenshots, SIZES, startServer, WAIT_MS } from "./harness.mjs";

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

test("presence: online, away on blur, offline when the tab closes", { timeout: 120_000 }, async (t) => {
  const shot = screenshots("presence");
  const alice = await openUser(browser, server.base, "alice", SIZES[0]);
  const bob = await openUser(browser, server.base, "bob", SIZES[0]);
  let bobOpen = true;
  t.after(async () => {
    await alice.context().close();
    if (bobOpen) await bob.context().close();
    assert.deepEqual(alice.errors, [], "alice's page threw");
  });
  const conv = await createGroup(alice, "Who is here", ["bob"]);
  await openConversation(bob, conv);
  // Two pages in one headless browser: which one has the focus (document.hasFocus) depends
  // on the last click, and a page without it is rightly `away`. Bob's page takes it here.
  await bob.evaluate(() => window.dispatchEvent(new Event("focus")));
  await alice.click("button[data-action=members]");
  const bobDot = (state) => alice.waitForSelector(`#members .member[data-account=bob] .dot[data-presence=${state}]`, { timeout: WAIT_MS });

  await bobDot("online");
  await shot(alice, "bob-online");
  await bob.evaluate(() => window.dispatchEvent(new Event("blur")));
  await bobDot("away");
  await shot(alice, "bob-away");
  await bob.evaluate(() => window.dispatchEvent(new Event("focus")));
  await bobDot("online");
  assert.deepEqual(bob.errors, [], "bob's page threw");
  await bob.context().close();
  bobOpen = false;
  await bobDot("offline");
  await shot(alice, "bob-offline");
});
