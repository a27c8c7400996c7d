// The timeline's place while messages arrive: at the bottom it follows the newest message;
// scrolled up to read, it stays where the reader is (the view keeps "at the bottom" from
// scroll events instead of reading the layout on every redraw).
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { bodies, createGroup, launchBrowser, openConversation, openUser, say, startServer, until } from "./harness.mjs";

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

/** The timeline's scroll position: how far from the bottom, and the first message shown. */
const place = (page) =>
  page.$eval(".center .timeline", (el) => ({
    fromBottom: el.scrollHeight - el.scrollTop - el.clientHeight,
    scrollTop: el.scrollTop,
    first: el.querySelector(".msg .msg-body")?.textContent,
  }));

/** Two animation frames: a scroll's event has fired and a redraw after it has run. */
const frames = (page) => page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));

test("the timeline follows new messages at the bottom and stays put while scrolled up", { timeout: 120_000 }, async (t) => {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });
  const conv = await createGroup(alice, "Scrolling", ["bob"]);
  await openConversation(bob, conv);
  // More messages than the timeline shows at once.
  const texts = Array.from({ length: 30 }, (_, i) => `line ${i}`);
  for (const text of texts) await say(alice, text);
  await until(bob, "bob has every line", bodies, (b) => texts.every((x) => b.includes(x)));
  await frames(bob);
  const start = await place(bob);
  assert.ok(start.scrollTop > 0, "the timeline overflows (the test needs a scrollbar)");
  assert.ok(start.fromBottom < 60, `bob follows the newest message (${start.fromBottom} px from the bottom)`);

  // Scrolled to the top: a new message neither moves him nor pushes the top one out.
  await bob.$eval(".center .timeline", (el) => (el.scrollTop = 0));
  await frames(bob);
  await say(alice, "while bob reads");
  await until(bob, "bob has the new message", bodies, (b) => b.includes("while bob reads"));
  await frames(bob);
  const reading = await place(bob);
  assert.equal(reading.scrollTop, 0, "the reader stays where he is");
  assert.equal(reading.first, start.first, "the top message stays");

  // Back at the bottom: the next message is followed again.
  await bob.$eval(".center .timeline", (el) => (el.scrollTop = el.scrollHeight));
  await frames(bob);
  await say(alice, "bob is back");
  await until(bob, "bob has the last message", bodies, (b) => b.includes("bob is back"));
  await frames(bob);
  const back = await place(bob);
  assert.ok(back.fromBottom < 60, `bob follows the newest message again (${back.fromBottom} px from the bottom)`);
});
