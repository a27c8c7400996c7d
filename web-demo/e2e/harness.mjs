// What the browser tests stand on: their own confab-server (demo mode, a fresh SQLite data
// dir, a free 127.0.0.1 port, the built page), the system's Chromium driven by playwright-core
// (which never downloads a browser), one fresh browser context per user, and helpers that
// act and read the page the way a user does.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const SERVER_BIN = process.env.CONFAB_SERVER_BIN ?? join(root, "target/debug/confab-server");
const WEB_ROOT = process.env.CONFAB_WEB_ROOT ?? join(root, "web-demo/dist");
const CHROMIUM = process.env.CONFAB_CHROMIUM ?? "/usr/bin/chromium";
export const ARTIFACTS = process.env.CONFAB_ARTIFACTS ?? join(root, "artifacts/e2e");
/** Screenshots of the layout at each screen size. */
export const LAYOUT_SHOTS = process.env.CONFAB_LAYOUT_SHOTS ?? join(root, "target/demo-e2e/screenshots");
/** The whole suite stops itself after this, server included (xtask's own limit is longer). */
const SUITE_LIMIT_MS = 14 * 60_000;

/** The screen sizes every flow runs at: a laptop, and a phone (touch, 390×844). */
export const SIZES = [
  { name: "desktop", viewport: { width: 1280, height: 800 } },
  { name: "phone", viewport: { width: 390, height: 844 }, hasTouch: true, isMobile: true },
];
export const WAIT_MS = 20_000;

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** `confab-server serve --demo` with the page, on a free port of 127.0.0.1, with `env` added
 * to its environment (its `CONFAB_*` settings); `stop()` kills it and removes its data;
 * `kill()` kills it (data kept) and `restart()` starts it again on the same port and data. */
export async function startServer({ env = {} } = {}) {
  for (const [what, path, how] of [
    ["confab-server", SERVER_BIN, "cargo build -p confab-server"],
    ["the built page", join(WEB_ROOT, "pkg/confab_wasm.js"), "cargo xtask demo e2e (it builds the wasm package and assembles web-demo/dist)"],
  ]) {
    if (!existsSync(path)) throw new Error(`${what} is missing at ${path}: run \`${how}\``);
  }
  const port = await freePort();
  const dataDir = mkdtempSync(join(tmpdir(), "confab-web-e2e-"));
  const base = `http://127.0.0.1:${port}`;
  let proc;
  let exited;
  const kill = async () => {
    if (proc.exitCode === null) proc.kill("SIGKILL");
    await exited;
  };
  const stop = async () => {
    clearTimeout(watchdog);
    await kill();
    rmSync(dataDir, { recursive: true, force: true });
  };
  const watchdog = setTimeout(() => {
    console.error(`the web demo suite ran over ${SUITE_LIMIT_MS / 60_000} minutes: stopping`);
    stop().finally(() => process.exit(1));
  }, SUITE_LIMIT_MS);
  process.once("exit", () => proc.exitCode === null && proc.kill("SIGKILL"));
  const launch = async () => {
    proc = spawn(
      SERVER_BIN,
      ["--data-dir", dataDir, "serve", "--demo", "--listen", `127.0.0.1:${port}`, "--web-root", WEB_ROOT],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn", ...env } },
    );
    exited = new Promise((ok) => proc.once("exit", ok));
    const start = Date.now();
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`confab-server exited (${proc.exitCode}) before it was healthy`);
      try {
        if ((await fetch(`${base}/healthz`)).ok) break;
      } catch {
        // not listening yet
      }
      if (Date.now() - start > 30_000) {
        await stop();
        throw new Error(`confab-server did not answer on ${base} within 30 s`);
      }
      await sleep(100);
    }
  };
  await launch();
  return { base, stop, kill, restart: launch };
}

/** Debian's Chromium, headless. Fails loudly when it is not installed. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium is not installed at ${CHROMIUM}. Install Debian's package: ` +
        "`apt-get update && apt-get install -y chromium` (or set CONFAB_CHROMIUM to a Chromium binary). " +
        "Never `npx playwright install`: these tests use the system's browser.",
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--disable-dev-shm-usage",
    ],
  });
}

/** A folder of screenshots for one test: `shot(page, "what")` writes `NN-user-what.png`. */
export function screenshots(test, dir = join(ARTIFACTS, test.replace(/[^a-z0-9]+/gi, "-").toLowerCase())) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  let n = 0;
  return async (page, what) => {
    n += 1;
    const file = join(dir, `${String(n).padStart(2, "0")}-${page.user}-${what}.png`);
    await page.screenshot({ path: file });
  };
}

/** One user in a fresh browser context (its own IndexedDB), signed in and online. Page
 * errors are collected in `page.errors` (tests assert there are none). */
export async function openUser(browser, base, user, size = SIZES[0]) {
  const { name, ...options } = size;
  const context = await browser.newContext(options);
  const page = await context.newPage();
  page.user = user;
  page.size = name;
  page.errors = [];
  page.logs = [];
  page.on("pageerror", (e) => page.errors.push(e.message));
  page.on("console", (m) => page.logs.push(m.text()));
  page.on("console", (m) => m.type() === "error" && /render failed/.test(m.text()) && page.errors.push(m.text()));
  await page.goto(`${base}/?user=${user}`);
  await page.waitForSelector("#connection[data-state=online]", { timeout: WAIT_MS });
  return page;
}

// ---------- acting like a user ----------

/** Creates a group with `members` through the dialog (`encrypted`: with its lock toggle
 * on); returns its conversation id. */
export async function createGroup(page, title, members, { encrypted = false } = {}) {
  await toList(page);
  await page.click('button[data-new="group"]');
  for (const box of await page.$$("dialog input[name=member]")) {
    assert.equal(await box.isChecked(), false, "nobody is picked for me");
    if (members.includes(await box.getAttribute("value"))) await box.check();
  }
  assert.equal(await page.isChecked("dialog input[name=encrypted]"), false, "plaintext unless chosen");
  if (encrypted) await page.check("dialog input[name=encrypted]");
  await page.fill("dialog input[name=title]", title);
  await page.click("dialog button[type=submit]");
  await page.waitForSelector(`#conv-title:text-is("${title}")`, { timeout: WAIT_MS });
  return new URL(page.url()).searchParams.get("conv");
}

/** Opens the direct conversation with `peer` through the dialog (`encrypted`: the pair's
 * encrypted one, with its lock toggle on); returns its conversation id. */
export async function openDirect(page, peer, { encrypted = false } = {}) {
  await toList(page);
  await page.click('button[data-new="direct"]');
  await page.selectOption("dialog select[name=peer]", peer);
  assert.equal(await page.isChecked("dialog input[name=encrypted]"), false, "plaintext unless chosen");
  if (encrypted) await page.check("dialog input[name=encrypted]");
  await page.click("dialog button[type=submit]");
  await page.waitForSelector("dialog", { state: "detached", timeout: WAIT_MS });
  await page.waitForSelector(".center .main .composer textarea", { timeout: WAIT_MS });
  return new URL(page.url()).searchParams.get("conv");
}

/** Opens the devices panel from the account's header (in the list, on a phone). */
export async function showDevices(page) {
  await toList(page);
  await page.click("#devices-button");
  await page.waitForSelector('.side[data-panel="devices"]:not([hidden]) #devices', { timeout: WAIT_MS });
}

/** Waits until this page's device holds its key packages in the server's directory: it is
 * registered (listed among the account's devices) and others can add it to encrypted
 * conversations from then on. */
export async function deviceReady(page) {
  await until(page, "key packages uploaded", (p) => p.evaluate(() => window.confabDemo.session.client.keyPackagesHeld), (n) => n === 20);
}

/** Opens the ⋯ menu of the message saying `text` and forwards it through the dialog into
 * conversation `to` (its id); the dialog closes when the forward went, and stays open with the
 * refusal when it was refused. */
export async function forward(page, text, to) {
  const msg = page.locator(".center .msg").filter({ has: page.locator(`.msg-body:text-is("${text}")`) });
  await msg.locator("button[data-action=menu]").click();
  await msg.locator(".menu button[data-action=forward]").click();
  await page.selectOption("dialog select[name=to]", to);
  await page.click("dialog button[type=submit]");
}

/** Opens a conversation from the list once it is there (the server tells of others' groups). */
export async function openConversation(page, conv) {
  await toList(page);
  const item = page.locator(`.conv-item[data-conv="${conv}"]`);
  await item.waitFor({ timeout: WAIT_MS });
  await item.click();
  await page.waitForSelector(`.center .main[data-conv="${conv}"] .composer textarea`, { timeout: WAIT_MS });
}

export async function say(page, text) {
  const field = page.locator(".center .composer textarea");
  await field.fill(text);
  await field.press("Enter");
  await page.waitForSelector(`.center .msg.mine .msg-body:text-is("${text}")`, { timeout: WAIT_MS });
}

/** On a phone, back to the conversation list (the sidebar) when a conversation is shown. */
export async function toList(page) {
  // The list is hidden only on a phone showing a conversation. The header (with its back
  // button) can be drawn a frame after the conversation's body: wait for it, not glance.
  if (await page.locator(".sidebar").isVisible()) return;
  await page.locator(".center #back").click({ timeout: WAIT_MS });
  await page.locator(".sidebar").waitFor({ state: "visible", timeout: WAIT_MS });
}

/** The switch is in the list: on a phone, go there and come back to the conversation. */
export async function setOfflineSwitch(page, offline) {
  const conv = new URL(page.url()).searchParams.get("conv");
  const wasInConversation = !(await page.locator(".sidebar").isVisible());
  await toList(page);
  if (offline) await page.check("#offline-switch");
  else await page.uncheck("#offline-switch");
  await page.waitForSelector(`#connection[data-state=${offline ? "offline" : "online"}]`, { timeout: WAIT_MS });
  if (wasInConversation && conv) await page.click(`.conv-item[data-conv="${conv}"]`);
}

/** Closes the side panel (members, thread) when one is open. */
export async function closePanel(page) {
  const close = page.locator(".side:not([hidden]) > header button[title=Close]");
  if (await close.isVisible()) await close.click();
}

/** Visible buttons smaller than `min` px either way (touch targets): [{ text, width, height }]. */
export function smallTargets(page, min = 44) {
  return page.$$eval(
    "button, [role=button]",
    (els, min) =>
      els
        .map((el) => ({ el, box: el.getBoundingClientRect() }))
        .filter(({ el, box }) => box.width > 0 && box.height > 0 && getComputedStyle(el).visibility !== "hidden")
        .filter(({ box }) => box.width < min - 0.5 || box.height < min - 0.5)
        .map(({ el, box }) => ({ text: el.textContent.trim().slice(0, 30), width: box.width, height: box.height })),
    min,
  );
}

/** Whether the page scrolls sideways (it must not, at any size). */
export function scrollsSideways(page) {
  return page.evaluate(() => document.scrollingElement.scrollWidth > window.innerWidth);
}

// ---------- reading the page ----------

/** The timeline as shown: [{ body, author, status, reason? }] in display order. */
export function timeline(page) {
  return page.$$eval(".center .timeline .msg", (els) =>
    els.map((el) => ({
      body: el.querySelector(".msg-body")?.textContent ?? "",
      author: el.dataset.author ?? null,
      status: el.dataset.status,
      reason: el.querySelector(".msg-reason .note-text")?.textContent ?? null,
      code: el.querySelector(".msg-reason")?.dataset.code ?? null,
    })),
  );
}

export const bodies = async (page) => (await timeline(page)).map((m) => m.body);

/** The devices panel's rows: [{ device, thisDevice, registered, lastSeen, keyPackages }]. */
export function devicesShown(page) {
  return page.$$eval("#devices .device", (els) =>
    els.map((el) => ({
      device: el.dataset.device,
      thisDevice: el.dataset.this === "true",
      marked: el.querySelector(".name .tag")?.textContent ?? null,
      registered: el.querySelector("[data-field=registered]")?.textContent ?? null,
      lastSeen: el.querySelector("[data-field=last-seen]")?.textContent ?? null,
      keyPackages: el.querySelector("[data-field=key-packages]")?.textContent ?? null,
    })),
  );
}

/** The outbox rows: [{ state, type, text }]. */
export function outbox(page) {
  return page.$$eval("#outbox li", (els) =>
    els.map((el) => ({ state: el.dataset.state, type: el.dataset.type, text: el.textContent })),
  );
}

/** Waits until `read(page)` satisfies `ok`, polling; fails with the last value seen. */
export async function until(page, what, read, ok, ms = WAIT_MS) {
  const start = Date.now();
  let value;
  for (;;) {
    value = await read(page);
    if (ok(value)) return value;
    if (Date.now() - start > ms) {
      throw new Error(`${page.user}: timed out waiting for ${what}; last seen: ${JSON.stringify(value)}`);
    }
    await sleep(100);
  }
}
