// Browser latency: send → rendered on the other user's page, and send → my own message marked
// accepted, through the real demo page, wasm client, IndexedDB and server. Run by
// `cargo xtask bench browser` (which builds the release server and the page); env:
// CONFAB_SERVER_BIN, CONFAB_WEB_ROOT, BENCH_MESSAGES (per direction, default 200),
// BENCH_RATE (messages per second per direction, default 10), BENCH_JSON (a file to append
// the result line to), BENCH_PROFILE=1 (print a CPU profile of the receiving page),
// BENCH_TRACE=<file>.json (a Chromium trace of the measured part, every process). It also
// prints where each page's main thread went (Chromium's script/style/layout counters).
//
// Two Chromium contexts (alice, bob) in one group; each page types its messages into the
// composer and presses Enter on a timer (a page-side clock: `performance.timeOrigin + now()`,
// shared by both pages of one browser), and a MutationObserver in each page stamps the
// moment a message first appears in the DOM and the moment my own is marked accepted.
import { appendFileSync, writeFileSync } from "node:fs";
import { createGroup, launchBrowser, openConversation, startServer, WAIT_MS } from "../harness.mjs";
import { pageCosts } from "./page-costs.mjs";

/** Like the harness's `openUser`, with the client's `trace` option on. */
async function openUser(browser, base, user) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.user = user;
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  await page.addInitScript(stampSocket);
  await page.goto(`${base}/?user=${user}&trace`);
  await page.waitForSelector("#connection[data-state=online]", { timeout: WAIT_MS });
  return page;
}

const clock = () => performance.timeOrigin + performance.now();

/** In the page, before its scripts: stamps when the page's JavaScript hands the WebSocket each
 * frame carrying a bench message (`__wsOut[label]`), and when it gets one (`__wsIn[label]`,
 * before the client's own handler). Page-side stamps: DevTools' frame events come through
 * the same busy renderer and arrive late. */
function stampSocket() {
  const Native = window.WebSocket;
  const now = () => performance.timeOrigin + performance.now();
  const labels = (data) => new TextDecoder("latin1").decode(data).match(/L[ab]-\d+/g) ?? [];
  window.__wsIn = {};
  window.__wsOut = {};
  window.WebSocket = function (...args) {
    const ws = new Native(...args);
    ws.addEventListener("message", (e) => {
      const t = now();
      if (e.data instanceof ArrayBuffer) for (const l of labels(e.data)) window.__wsIn[l] ??= t;
    });
    ws.send = (data) => {
      if (typeof data !== "string") for (const l of labels(data)) window.__wsOut[l] ??= now();
      return Native.prototype.send.call(ws, data);
    };
    return ws;
  };
  window.WebSocket.prototype = Native.prototype;
  Object.assign(window.WebSocket, { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 });
  // When the animation frame callback that redraws started (`__rafAt`): splits a received
  // message's time into the wait for the next frame and the redraw.
  const nativeRaf = window.requestAnimationFrame.bind(window);
  window.requestAnimationFrame = (callback) =>
    nativeRaf((t) => {
      window.__rafAt = now();
      return callback(t);
    });
}

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 200);
const RATE = Number(process.env.BENCH_RATE ?? 10);
const WARMUP = 10;

/** In the page: stamps first appearance of every `L…` message and my own acks, and keeps
 * the client's `trace` events (the page was opened with `?trace`). */
async function observe() {
  const now = () => performance.timeOrigin + performance.now();
  const lat = { sent: {}, seen: {}, frame: {}, acked: {}, trace: [], longtasks: [] };
  // Main-thread tasks over 50 ms (rendering, the engine): they hold every other step back.
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) lat.longtasks.push(e.duration);
  }).observe({ type: "longtask" });
  window.__lat = lat;
  const { ui } = await import(`${location.origin}/app/state.js`);
  ui.session.client.on("trace", (e) => lat.trace.push([e.stage, e.us]));
  const look = (el) => {
    const body = el.querySelector(".msg-body")?.textContent ?? "";
    if (!/^L[ab]-\d+$/.test(body)) return;
    const t = now();
    if (lat.seen[body] === undefined) {
      lat.seen[body] = t;
      lat.frame[body] = window.__rafAt;
    }
    if (el.classList.contains("mine") && el.dataset.status === "accepted") lat.acked[body] ??= t;
  };
  new MutationObserver((records) => {
    for (const r of records) {
      if (r.type === "attributes") {
        if (r.target.classList?.contains("msg")) look(r.target);
        continue;
      }
      for (const node of r.addedNodes) {
        if (node.nodeType !== 1) continue;
        if (node.classList.contains("msg")) look(node);
        for (const el of node.querySelectorAll(".msg")) look(el);
      }
    }
  }).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"] });
}

/** In the page: types `L<who>-<i>` and presses Enter every 1000/rate ms, from `from` to `to`. */
function sendAll([who, from, to, rate]) {
  const lat = window.__lat;
  return new Promise((done) => {
    let i = from;
    const field = document.querySelector(".center .composer textarea");
    const timer = setInterval(() => {
      if (i >= to) {
        clearInterval(timer);
        done();
        return;
      }
      const text = `L${who}-${i}`;
      field.value = text;
      lat.sent[text] = performance.timeOrigin + performance.now();
      field.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true, cancelable: true }));
      i += 1;
    }, 1000 / rate);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
function stats(values) {
  const s = [...values].sort((a, b) => a - b);
  return { n: s.length, p50: pct(s, 50), p90: pct(s, 90), p99: pct(s, 99), max: s[s.length - 1] };
}

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

async function main() {
  const server = await startServer();
  const browser = await launchBrowser();
  try {
    const alice = await openUser(browser, server.base, "alice");
    const bob = await openUser(browser, server.base, "bob");
    const conv = await createGroup(alice, "Latency", ["bob"]);
    await openConversation(bob, conv);
    for (const page of [alice, bob]) await page.evaluate(observe);

    const run = (from, to) =>
      Promise.all([
        alice.evaluate(sendAll, ["a", from, to, RATE]),
        // Bob half a period later, so the two streams interleave.
        sleep(500 / RATE).then(() => bob.evaluate(sendAll, ["b", from, to, RATE])),
      ]);
    await run(0, WARMUP);
    for (const page of [alice, bob]) await page.evaluate(() => {
      window.__lat.trace.length = 0;
      window.__lat.longtasks.length = 0;
    });
    // BENCH_PROFILE=1: a CPU profile of bob's page over the measured part (what its main
    // thread spends its time on), the top functions by self time printed at the end.
    const profiler = process.env.BENCH_PROFILE ? await bob.context().newCDPSession(bob) : undefined;
    if (profiler) {
      await profiler.send("Profiler.enable");
      await profiler.send("Profiler.setSamplingInterval", { interval: 500 });
      await profiler.send("Profiler.start");
    }
    // Where each page's main thread went over the measured part (Chromium's own counters:
    // scripts, style, layout, and the task total, which includes paint and the rest).
    const metered = await Promise.all(
      [alice, bob].map(async (page) => {
        const cdp = await page.context().newCDPSession(page);
        await cdp.send("Performance.enable");
        const read = async () =>
          Object.fromEntries((await cdp.send("Performance.getMetrics")).metrics.map((m) => [m.name, m.value]));
        return { read, before: await read() };
      }),
    );
    // BENCH_TRACE=<file>.json: a Chromium trace of the measured part (every process and
    // thread; DevTools' Performance panel or chrome://tracing opens it).
    if (process.env.BENCH_TRACE) {
      await browser.startTracing(undefined, {
        path: process.env.BENCH_TRACE,
        categories: (process.env.BENCH_TRACE_CATEGORIES ?? "toplevel,devtools.timeline,blink,cc,v8,viz,gpu,IndexedDB,net").split(","),
      });
    }
    const measuredFrom = Date.now();
    await run(WARMUP, WARMUP + MESSAGES);
    if (process.env.BENCH_TRACE) await browser.stopTracing();
    const measuredMs = Date.now() - measuredFrom;
    const mainThread = await Promise.all(
      metered.map(async ({ read, before }) => {
        const after = await read();
        const ms = (name) => Math.round((after[name] - before[name]) * 1000);
        return {
          task: ms("TaskDuration"),
          script: ms("ScriptDuration"),
          style: ms("RecalcStyleDuration"),
          layout: ms("LayoutDuration"),
        };
      }),
    );
    const profile = profiler && (await profiler.send("Profiler.stop")).profile;
    // BENCH_PROFILE=<file>.cpuprofile: the whole profile too (DevTools opens it).
    if (profile && process.env.BENCH_PROFILE.endsWith(".cpuprofile")) writeFileSync(process.env.BENCH_PROFILE, JSON.stringify(profile));

    // Wait until every message was seen by the other side and acked on its own.
    const names = (who) => Array.from({ length: MESSAGES }, (_, i) => `L${who}-${WARMUP + i}`);
    const deadline = Date.now() + 60_000;
    let a;
    let b;
    for (;;) {
      [a, b] = await Promise.all([alice.evaluate(() => window.__lat), bob.evaluate(() => window.__lat)]);
      const complete =
        names("a").every((n) => b.seen[n] && a.acked[n]) && names("b").every((n) => a.seen[n] && b.acked[n]);
      if (complete) break;
      if (Date.now() > deadline) {
        const missing = names("a").filter((n) => !b.seen[n]).length + names("b").filter((n) => !a.seen[n]).length;
        throw new Error(`not every message arrived within 60 s after sending (${missing} missing)`);
      }
      await sleep(250);
    }
    const delivered = [
      ...names("a").map((n) => b.seen[n] - a.sent[n]),
      ...names("b").map((n) => a.seen[n] - b.sent[n]),
    ];
    const acked = [...names("a").map((n) => a.acked[n] - a.sent[n]), ...names("b").map((n) => b.acked[n] - b.sent[n])];
    const shownOwn = [...names("a").map((n) => a.seen[n] - a.sent[n]), ...names("b").map((n) => b.seen[n] - b.sent[n])];
    const result = {
      bench: "browser-latency",
      messages_per_direction: MESSAGES,
      rate_per_direction: RATE,
      delivered_ms: stats(delivered),
      own_acked_ms: stats(acked),
      own_shown_ms: stats(shownOwn),
    };
    const row = (what, s) =>
      `${what.padEnd(34)} ${s.p50.toFixed(1).padStart(7)} ${s.p90.toFixed(1).padStart(7)} ${s.p99.toFixed(1).padStart(7)} ${s.max.toFixed(1).padStart(7)}`;
    console.log(`\nbrowser latency: 2 Chromium pages, ${MESSAGES} messages each way at ${RATE}/s each (ms)`);
    console.log(`${"".padEnd(34)} ${"p50".padStart(7)} ${"p90".padStart(7)} ${"p99".padStart(7)} ${"max".padStart(7)}`);
    console.log(row("send → shown on the other page", result.delivered_ms));
    console.log(row("send → own message shown", result.own_shown_ms));
    console.log(row("send → own message accepted", result.own_acked_ms));
    // Where one message's time goes, from the frames that carry its text: the sender's page
    // (keydown → its frame handed to the socket), the way between the pages (browser network,
    // server, the receiver's main thread getting to the frame) and the receiver (client and
    // page → shown).
    const [aWs, bWs] = await Promise.all([alice, bob].map((p) => p.evaluate(() => [window.__wsOut, window.__wsIn])));
    const legs = { keydown_to_socket: [], socket_to_socket: [], frame_to_shown: [] };
    // The server pushes a change to every subscriber, its sender too: the sender's own copy
    // takes the same network and server as the other page's, without the other renderer's
    // main thread (what socket_to_socket adds over it is the receiving page's queue).
    const echo = [];
    for (const [who, fromLat, toLat, fromWs, toWs] of [["a", a, b, aWs, bWs], ["b", b, a, bWs, aWs]]) {
      for (const n of names(who)) {
        if (fromWs[0][n] !== undefined && fromWs[1][n] !== undefined) echo.push(fromWs[1][n] - fromWs[0][n]);
        const steps = [fromLat.sent[n], fromWs[0][n], toWs[1][n], toLat.seen[n]];
        if (steps.some((t) => t === undefined)) continue;
        Object.values(legs).forEach((leg, i) => leg.push(steps[i + 1] - steps[i]));
      }
    }
    legs.socket_to_own_echo = echo;
    // frame_to_shown split at the start of the animation frame that showed the message (a
    // stamp from before the frame arrived means it was not shown by a frame callback).
    legs.frame_to_next_frame = [];
    legs.next_frame_to_shown = [];
    for (const [who, toLat, toWs] of [["a", b, bWs], ["b", a, aWs]]) {
      for (const n of names(who)) {
        const [arrived, frame, shown] = [toWs[1][n], toLat.frame[n], toLat.seen[n]];
        if (arrived === undefined || frame === undefined || frame < arrived) continue;
        legs.frame_to_next_frame.push(frame - arrived);
        legs.next_frame_to_shown.push(shown - frame);
      }
    }
    result.legs_ms = {};
    console.log("\none message's way (frames carrying its text; both directions, ms):");
    for (const [leg, values] of Object.entries(legs)) {
      if (!values.length) continue;
      result.legs_ms[leg] = stats(values);
      console.log(row(`  ${leg} (${values.length}×)`, result.legs_ms[leg]));
    }
    // Where the client's time goes (both pages, the measured part only).
    const stages = {};
    for (const [stage, us] of [...a.trace, ...b.trace]) (stages[stage] ??= []).push(us / 1000);
    result.client_stages_ms = {};
    console.log("\nclient stages (trace events, both pages, ms):");
    for (const [stage, values] of Object.entries(stages)) {
      result.client_stages_ms[stage] = stats(values);
      console.log(row(`  ${stage} (${values.length}×)`, result.client_stages_ms[stage]));
    }
    // What the page's queries cost now (the demo calls them on every redraw).
    result.query_ms = await bob.evaluate(pageCosts, conv);
    console.log(`query medians in bob's page (ms): ${JSON.stringify(result.query_ms)}`);
    result.main_thread_ms = { wall: measuredMs, alice: mainThread[0], bob: mainThread[1] };
    console.log(
      `main thread busy over ${(measuredMs / 1000).toFixed(1)} s (ms; task = all, of which script, style, layout): ` +
        ["alice", "bob"].map((who, i) => `${who} ${JSON.stringify(mainThread[i])}`).join(", "),
    );
    const long = [...a.longtasks, ...b.longtasks];
    result.long_tasks = { n: long.length, total_ms: long.reduce((x, y) => x + y, 0), max_ms: Math.max(0, ...long) };
    console.log(
      `main-thread tasks > 50 ms (both pages): ${long.length}, ${result.long_tasks.total_ms.toFixed(0)} ms in all, longest ${result.long_tasks.max_ms.toFixed(0)} ms`,
    );
    if (profile) {
      const self = new Map();
      const dt = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
      const hits = new Map();
      for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
      for (const node of profile.nodes) {
        const f = node.callFrame;
        const key = `${f.functionName || "(anonymous)"} ${f.url.split("/").pop()}:${f.lineNumber + 1}`;
        self.set(key, (self.get(key) ?? 0) + (hits.get(node.id) ?? 0) * dt);
      }
      const total = [...self.values()].reduce((x, y) => x + y, 0);
      console.log(`\nbob's main thread, self time by function (${(total / 1000).toFixed(1)} s profiled):`);
      for (const [key, ms] of [...self].sort((x, y) => y[1] - x[1]).slice(0, 15)) {
        console.log(`  ${ms.toFixed(0).padStart(7)} ms  ${key}`);
      }
    }
    console.log(JSON.stringify(result));
    if (process.env.BENCH_JSON) appendFileSync(process.env.BENCH_JSON, `${JSON.stringify(result)}\n`);
    for (const page of [alice, bob]) {
      if (page.errors.length) throw new Error(`${page.user}'s page threw: ${page.errors.join("; ")}`);
    }
  } finally {
    await browser.close();
    await server.stop();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    process.exit(1);
  },
);
