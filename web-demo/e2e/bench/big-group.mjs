// The web demo in a 1,000-member group: what an idle redraw and the client's queries cost a
// member's page (they should cost what they cost in a group of 2: the page redraws on every
// change, and a group's size is no reason to redraw slower). Run by `cargo xtask bench
// browser` after the latency run; env: CONFAB_SERVER_BIN, CONFAB_WEB_ROOT, MEMBERS (added
// besides alice and bob, default 998), BENCH_JSON (a file to append the result line to).
import { appendFileSync } from "node:fs";
import { createGroup, launchBrowser, openConversation, openUser, say, startServer } from "../harness.mjs";

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
  const q = await bob.evaluate(async (convId) => {
    const { ui, render } = await import(`${location.origin}/app/state.js`);
    const { client } = ui.session;
    const time = (f) => {
      const runs = [];
      for (let i = 0; i < 15; i++) {
        const t = performance.now();
        f();
        runs.push(performance.now() - t);
      }
      return runs.sort((x, y) => x - y)[7];
    };
    const redraws = [];
    for (let i = 0; i < 7; i++) {
      await new Promise((done) => {
        let start;
        requestAnimationFrame(() => (start = performance.now()));
        render();
        requestAnimationFrame(() => {
          redraws.push(performance.now() - start);
          done();
        });
      });
    }
    const c = client.conversation(convId);
    return {
      bench: "browser-big-group",
      members: c.members.length,
      redraw: redraws.sort((x, y) => x - y)[3],
      conversation: time(() => client.conversation(convId)),
      stringify: time(() => JSON.stringify(c.members)),
      conversations: time(() => client.conversations()),
      can_send: time(() => client.can({ action: "send", conv: convId })),
    };
  }, conv);
  console.log(
    `\nthe page in a group of ${q.members} (medians, ms): idle redraw ${q.redraw.toFixed(1)}, conversation() ${q.conversation.toFixed(2)}, ` +
      `conversations() ${q.conversations.toFixed(2)}, can(send) ${q.can_send.toFixed(2)}, JSON of the member list ${q.stringify.toFixed(2)}`,
  );
  console.log(JSON.stringify(q));
  if (process.env.BENCH_JSON) appendFileSync(process.env.BENCH_JSON, `${JSON.stringify(q)}\n`);
} finally {
  await browser.close();
  await server.stop();
}
