// The token issuer of docs/PROTOCOL.md ("Authentication"), run as written against a real
// confab-server started with CONFAB_JWT_SECRET: what the docs tell a backend to issue is
// what the server takes, and the refusals are the ones they list.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Server, freePort } from "./support.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SECRET = "correct horse battery staple";

// The first `js` block of the "Authentication" section, as a module.
function issuerFromDocs(dir) {
  const text = readFileSync(resolve(here, "../../docs/PROTOCOL.md"), "utf8");
  const section = text.slice(text.indexOf("## Authentication\n"));
  const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(code, "PROTOCOL.md, Authentication, has a js block");
  const file = join(dir, "confab-token.mjs");
  writeFileSync(file, code);
  return import(pathToFileURL(file).href);
}

// Tokens the docs say are refused, signed like the docs' own.
function signed(claims, { alg = "HS256", secret = SECRET } = {}) {
  const part = (json) => Buffer.from(JSON.stringify(json)).toString("base64url");
  const body = `${part({ alg, typ: "JWT" })}.${part(claims)}`;
  const hash = alg === "HS512" ? "sha512" : "sha256";
  return `${body}.${createHmac(hash, secret).update(body).digest("base64url")}`;
}

let server;
let dataDir;
let confabToken;

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "confab-tokens-"));
  ({ confabToken } = await issuerFromDocs(dataDir));
  process.env.CONFAB_JWT_SECRET = SECRET;
  server = new Server(await freePort(), dataDir);
  await server.start();
});

after(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function call(token) {
  const res = await fetch(`${server.base}/v1/conversations`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const body = await res.json();
  return { status: res.status, code: body.code, challenge: res.headers.get("www-authenticate") };
}

test("the documented issuer's tokens are accepted", async () => {
  assert.equal((await call(confabToken(SECRET, { sub: "alice", tenant: "acme" }))).status, 200);
  const service = confabToken(SECRET, { sub: "crm-bot", tenant: "acme", kind: "service" });
  assert.equal((await call(service)).status, 200);
  const email = confabToken(SECRET, { sub: "jane.doe+x@example.com", tenant: "acme" });
  assert.equal((await call(email)).status, 200);
});

test("the documented refusals", async () => {
  const now = Math.floor(Date.now() / 1000);
  const expired = await call(confabToken(SECRET, { sub: "alice", tenant: "acme", ttlSeconds: -1 }));
  assert.deepEqual(expired, { status: 401, code: "token_expired", challenge: "Bearer" });
  const cases = {
    "another secret": confabToken("not the secret", { sub: "alice", tenant: "acme" }),
    "another algorithm": signed({ sub: "alice", tenant: "acme", exp: now + 60 }, { alg: "HS512" }),
    "an audience": signed({ sub: "alice", tenant: "acme", exp: now + 60, aud: "confab" }),
    "an unknown kind": signed({ sub: "alice", tenant: "acme", exp: now + 60, kind: "root" }),
    "no tenant": signed({ sub: "alice", exp: now + 60 }),
    "no exp": signed({ sub: "alice", tenant: "acme" }),
    "an account outside the charset": signed({ sub: "josé", tenant: "acme", exp: now + 60 }),
  };
  for (const [what, token] of Object.entries(cases)) {
    assert.deepEqual(await call(token), { status: 401, code: "auth_failed", challenge: "Bearer" }, what);
  }
  // Ignored claims: iss, iat, nbf (even in the future), jti.
  const extra = signed({ sub: "alice", tenant: "acme", exp: now + 60, iss: "me", iat: now, nbf: now + 3600, jti: "x" });
  assert.equal((await call(extra)).status, 200);
});
