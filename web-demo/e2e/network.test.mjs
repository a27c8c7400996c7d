// Network truth: the page knows within seconds that it lost the network or the server (the
// header says so, new messages wait as pending), and comes back by itself. Unlike chat.test's
// offline switch (the app's own choice), nothing here tells the client: the browser goes
// offline (context.setOffline) or the server process is killed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  bodies,
  createGroup,
  launchBrowser,
  openConversation,
  openUser,
  outbox,
  screenshots,
  startServer,
  timeline,
  until,
  WAIT_MS,
} from "./harness.mjs";

const TEST_MS = 120_000;
/** The page's promise: the header tells the truth within this. */
const KNOW_MS = 5_000;
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

async function users(t, ...names) {
  const pages = [];
  for (const name of names) pages.push(await openUser(browser, server.base, name));
  t.after(async () => {
    for (const page of pages) await page.context().close();
    for (const page of pages) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  return pages;
}

/** Milliseconds until the header shows one of `states` (fails after `ms`). */
async function headerShows(page, states, ms) {
  const start = Date.now();
  const selector = states.map((s) => `#connection[data-state=${s}]`).join(", ");
  await page.waitForSelector(selector, { timeout: ms });
  return Date.now() - start;
}

/** Types and sends a message without waiting for any delivery state. */
async function write(page, text) {
  const field = page.locator(".center .composer textarea");
  await field.fill(text);
  await field.press("Enter");
  await page.waitForSelector(`.center .msg.mine .msg-body:text-is("${text}")`, { timeout: WAIT_MS });
}

const statusOf = (text) => async (page) => (await timeline(page)).find((m) => m.body === text)?.status;

/** A group of alice and bob, both looking at it, one message through so both are live. */
async function chatting(alice, bob, title) {
  const conv = await createGroup(alice, title, ["bob"]);
  await openConversation(bob, conv);
  await write(alice, `${title}: hello`);
  await until(bob, "the first message", bodies, (b) => b.includes(`${title}: hello`));
  return conv;
}

test("a lost network shows within 5 s, a message written offline waits and goes out when it is back", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("network lost");
  const [alice, bob] = await users(t, "alice", "bob");
  await chatting(alice, bob, "Network");

  await alice.context().setOffline(true);
  const took = await headerShows(alice, ["offline"], KNOW_MS);
  console.log(`  header offline ${took} ms after the network went away`);
  await write(alice, "Written offline");
  assert.equal(await statusOf("Written offline")(alice), "pending", "queued, not 'sent'");
  const queued = await outbox(alice);
  assert.ok(
    queued.some((o) => o.type === "send" && o.state === "pending"),
    `the outbox holds it as pending: ${JSON.stringify(queued)}`,
  );
  await shot(alice, "offline-queued");

  await alice.context().setOffline(false);
  await headerShows(alice, ["online"], KNOW_MS);
  await until(bob, "the offline message", bodies, (b) => b.includes("Written offline"));
  await until(alice, "its ack", statusOf("Written offline"), (s) => s === "accepted");
  await shot(alice, "back-online");
});

test("a killed server shows within 5 s; its restart reconnects and delivers what waited", { timeout: TEST_MS }, async (t) => {
  const shot = screenshots("server killed");
  const [alice, bob] = await users(t, "alice", "bob");
  await chatting(alice, bob, "Server");

  await server.kill();
  for (const page of [alice, bob]) {
    const took = await headerShows(page, ["offline", "connecting"], KNOW_MS);
    console.log(`  ${page.user}: header offline/connecting ${took} ms after the kill`);
  }
  await write(alice, "While the server was down");
  assert.equal(await statusOf("While the server was down")(alice), "pending", "queued, not 'sent'");
  await shot(alice, "server-down");

  await server.restart();
  for (const page of [alice, bob]) await headerShows(page, ["online"], WAIT_MS);
  await until(bob, "the message written while down", bodies, (b) => b.includes("While the server was down"));
  await until(alice, "its ack", statusOf("While the server was down"), (s) => s === "accepted");
  await shot(bob, "reconnected");
});
