// What the Node tests share: a real confab-server they can stop and restart
// (CONFAB_SERVER_BIN, default target/debug/confab-server; `env` adds `CONFAB_*` settings
// of its own), and small waiting helpers.
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket as WsWebSocket } from "ws";

// Node 20 has no global WebSocket (22 has): the package uses whatever `WebSocket` is global.
globalThis.WebSocket ??= WsWebSocket;

const here = dirname(fileURLToPath(import.meta.url));
const serverBin =
  process.env.CONFAB_SERVER_BIN ?? resolve(here, "../../target/debug/confab-server");

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export async function waitFor(what, cond, ms = 20000) {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export class Server {
  constructor(port, dataDir, env = {}) {
    this.port = port;
    this.dataDir = dataDir;
    this.env = env;
    this.base = `http://127.0.0.1:${port}`;
  }
  async start() {
    this.proc = spawn(
      serverBin,
      ["--data-dir", this.dataDir, "serve", "--listen", `127.0.0.1:${this.port}`, "--demo"],
      { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn", ...this.env } },
    );
    await waitFor("the server", async () => {
      try {
        return (await fetch(`${this.base}/healthz`)).ok;
      } catch {
        return false;
      }
    });
  }
  async stop() {
    if (!this.proc) return;
    const exited = new Promise((ok) => this.proc.once("exit", ok));
    this.proc.kill("SIGKILL");
    await exited;
    this.proc = undefined;
  }
  async token(user) {
    const res = await fetch(`${this.base}/demo/token?user=${user}`);
    if (!res.ok) throw new Error(`/demo/token: ${res.status}`);
    return (await res.json()).token;
  }
}

