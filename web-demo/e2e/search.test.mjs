// Message search (views/search.js): alice types into the search box above her list; the
// results replace the list, grouped by conversation, the matching words highlighted (accents
// folded, the last word as a prefix); a click opens the conversation scrolled to the message
// and flashes it. With the page offline the device's results still come, marked as this
// device's only; back online the mark goes.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import {
  createGroup,
  launchBrowser,
  openUser,
  say,
  screenshots,
  setOfflineSwitch,
  SIZES,
  startServer,
  toList,
  until,
  WAIT_MS,
} from "./harness.mjs";

const TEST_MS = 180_000;
/** Messages after the one searched for: enough to push it out of view. */
const AFTER = 14;
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

async function searchFor(page, text) {
  await toList(page);
  await page.fill("#search", text);
}

/** The results as shown: [{ conv, id, source, marked: [highlighted words] }]. */
function results(page) {
  return page.$$eval("#search-results .search-hit", (els) =>
    els.map((el) => ({
      conv: el.dataset.conv,
      id: el.dataset.id,
      source: el.dataset.source,
      group: el.closest(".search-group")?.querySelector("h4")?.textContent,
      marked: [...el.querySelectorAll("mark")].map((m) => m.textContent),
    })),
  );
}

for (const size of SIZES) {
  test(`${size.name}: search finds, highlights and jumps, offline too`, { timeout: TEST_MS }, async (t) => {
    const shot = screenshots(`${size.name} search`);
    const alice = await openUser(browser, server.base, "alice", size);
    t.after(async () => {
      await alice.context().close();
      assert.deepEqual(alice.errors, [], "alice's page threw");
    });
    const title = `Trip ${size.name}`;
    const conv = await createGroup(alice, title, ["bob"]);
    const word = `Zanzibar${size.name}`;
    await say(alice, `Meet at the Café ${word} at nine`);
    for (let i = 0; i < AFTER; i++) await say(alice, `filler ${i} of ${size.name}`);

    // Accents fold and the last word is a prefix: "cafe zanzibarpho" finds "Café Zanzibarphone".
    await searchFor(alice, `cafe ${word.slice(0, -2).toLowerCase()}`);
    const found = await until(alice, "the result", results, (r) => r.length === 1 && r[0].source === "both");
    assert.equal(found[0].conv, conv);
    assert.equal(found[0].group, title);
    assert.deepEqual(found[0].marked, ["Café", word]);
    assert.equal(await alice.locator(".conv-list").isHidden(), true, "the results take the list's place");
    assert.equal(await alice.locator(".search-partial").count(), 0);
    await shot(alice, "results");

    // A click opens the conversation at the message, flashed, in view.
    await alice.click(`#search-results .search-hit[data-id="${found[0].id}"]`);
    const target = alice.locator(`.center .msg[data-id="${found[0].id}"]`);
    await alice.locator(`.center .msg.found[data-id="${found[0].id}"]`).waitFor({ timeout: WAIT_MS });
    const inView = await target.evaluate((el) => {
      const box = el.getBoundingClientRect();
      const pane = el.closest(".timeline").getBoundingClientRect();
      return box.bottom > pane.top && box.top < pane.bottom;
    });
    assert.ok(inView, "the found message is scrolled into view");
    await shot(alice, "jumped");

    // Offline: the device's results, said to be this device's only.
    await searchFor(alice, "");
    await setOfflineSwitch(alice, true);
    await searchFor(alice, "CAFE");
    await until(alice, "the offline result", results, (r) => r.some((x) => x.id === found[0].id && x.source === "device"));
    const partial = alice.locator('#search-results .search-partial[data-reason="offline"]');
    await partial.waitFor({ timeout: WAIT_MS });
    assert.match(await partial.textContent(), /Offline/);
    await shot(alice, "offline");

    // Back online: asked again, the server's part is there and the mark goes.
    await setOfflineSwitch(alice, false);
    await toList(alice);
    await partial.waitFor({ state: "detached", timeout: WAIT_MS });
    await until(alice, "the merged result", results, (r) => r.some((x) => x.id === found[0].id && x.source === "both"));

    // Escape empties the box and the list comes back.
    await alice.press("#search", "Escape");
    await alice.locator(".conv-list").waitFor({ state: "visible", timeout: WAIT_MS });
  });
}
