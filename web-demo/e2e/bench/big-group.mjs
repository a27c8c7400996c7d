// The web demo in a 1,000-member group: what an idle redraw and the client's queries cost a
// member's page (they should cost what they cost in a group of 2: the page redraws on every
// change, and a group's size is no reason to redraw slower). Run by `cargo xtask bench
// browser` after the latency run; env: CONFAB_SERVER_BIN, CONFAB_WEB_ROOT, MEMBERS (added
// besides alice and bob, default 998), BENCH_JSON (a file to append the result line to).
import { appendFileSync } from "node:fs";
import { createGroup, launchBrowser, openConversation, openUser, say, startServer } from "../harness.mjs";
import { pageCosts } from "./page-costs.mjs";

const server = await startServer();
const browser = await launchBrowser();
try {
  const alice = await openUser(browser, server.base, "alice");
  const bob = await openUser(browser, server.base, "bob");
  const conv = await createGroup(alice, "Big", ["bob"]);
  const { token } = await (await fetch(`${server.base}/demo/token?user=alice`)).json();
  const N = Number(process.env.MEMBERS ?? 998);
  for (let i = 0; i < N; i++) {
    const r = await fetch(`${server.base}/v1/conversations/${conv}/members`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ account: `user${i}`, role: "member" }),
    });
    if (!r.ok) throw new Error(`adding user${i}: ${r.status} ${await r.text()}`);
  }
  await openConversation(bob, conv);
  await new Promise((r) => setTimeout(r, 3000));
  for (let i = 0; i < 5; i++) await say(alice, `hello ${i}`);
  await new Promise((r) => setTimeout(r, 2000));
  const q = { bench: "browser-big-group", ...(await bob.evaluate(pageCosts, conv)) };
  console.log(
    `\nthe page in a group of ${q.members} (medians, ms): idle redraw ${q.redraw.toFixed(1)}, conversation() ${q.conversation.toFixed(2)}, ` +
      `conversations() ${q.conversations.toFixed(2)}, can(send) ${q.can_send.toFixed(2)}, JSON of the member list ${q.members_json.toFixed(2)}`,
  );
  console.log(JSON.stringify(q));
  if (process.env.BENCH_JSON) appendFileSync(process.env.BENCH_JSON, `${JSON.stringify(q)}\n`);
} finally {
  await browser.close();
  await server.stop();
}
