// A support thread's lead: the owner closes it with its outcome, reason
// and lead id from the header, the client may not, and both see the outcome.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { launchBrowser, openConversation, openUser, startServer, toList, until, WAIT_MS } from "./harness.mjs";

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

const outcomeOf = (page) =>
  page.$$eval("#lead-outcome", (els) => (els[0] ? { outcome: els[0].dataset.outcome, text: els[0].textContent, reason: els[0].title } : null));

test("the owner closes a support thread's lead as won; the client sees it and may not", { timeout: TEST_MS }, async (t) => {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  t.after(async () => {
    for (const page of [alice, bob]) await page.context().close();
    for (const page of [alice, bob]) assert.deepEqual(page.errors, [], `${page.user}'s page threw`);
  });

  // Alice owns the resource, bob asks about it.
  await toList(alice);
  await alice.click('button[data-new="support"]');
  await alice.selectOption("dialog select[name=side]", "owner");
  await alice.selectOption("dialog select[name=other]", "bob");
  await alice.click("dialog button[type=submit]");
  await alice.waitForSelector(".center .main .composer textarea", { timeout: WAIT_MS });
  const conv = new URL(alice.url()).searchParams.get("conv");
  assert.ok(conv?.startsWith("s-"), `a support thread: ${conv}`);

  // The client may not close the lead: the button says why.
  await openConversation(bob, conv);
  const bobsButton = bob.locator('.center [data-action="close-lead"]');
  await bobsButton.waitFor({ timeout: WAIT_MS });
  assert.equal(await bobsButton.isDisabled(), true, "the client's button is off");

  await alice.click('.center [data-action="close-lead"]');
  await alice.selectOption("dialog select[name=outcome]", "closed_won");
  await alice.fill("dialog input[name=reason]", "booked for March");
  await alice.fill("dialog input[name=lead]", "L-42");
  await alice.click("dialog button[type=submit]");
  for (const page of [alice, bob]) {
    await until(page, "the outcome in the header", outcomeOf, (o) => o?.outcome === "closed_won");
    const shown = await outcomeOf(page);
    assert.match(shown.text, /won · L-42/);
    assert.equal(shown.reason, "booked for March");
    assert.equal(await page.locator("#lifecycle").textContent(), "closed");
  }
});
