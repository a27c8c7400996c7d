// The example SQLite adapter (wasm/js/sqlite-storage.mjs) forgets (wasm/README.md,
// "Storage"): a value deleted, deleted by prefix (a part replaced by its next generation) or
// overwritten is in no byte of the database the host saves, while the live values are.
import { test } from "node:test";
import assert from "node:assert/strict";
import initSqlJs from "sql.js";
import { sqliteStorage } from "../../wasm/js/sqlite-storage.mjs";

const SQL = await initSqlJs();
const bytes = (s) => new TextEncoder().encode(s);
const holds = (saved, marker) => Buffer.from(saved).includes(Buffer.from(marker));

test("deleted and replaced values are not in the saved database", async () => {
  const db = new SQL.Database();
  let saved = new Uint8Array();
  const storage = sqliteStorage(db, { persist: (d) => (saved = d.export()) });
  const put = (key, value) => ({ op: "put", key, value: bytes(value) });
  const body = (n) => `forget-marker-body-${n}-`.repeat(20);
  await storage.write([1, 2, 3].map((n) => put(`chg/part/${n}`, body(n))));
  await storage.write([put("out/1", "forget-marker-outbox"), put("keep", "kept-old-body")]);
  await storage.write([put("sx/m/part/m1", "forget-marker-search")]);
  for (const marker of ["forget-marker-body-2", "forget-marker-outbox", "kept-old-body"]) {
    assert.ok(holds(saved, marker), `the check can see ${marker}`);
  }

  await storage.write([
    { op: "deletePrefix", prefix: "chg/part/" },
    put("snap/part", "next-generation"),
    { op: "delete", key: "out/1" },
    { op: "delete", key: "sx/m/part/m1" },
    put("keep", "kept-newest-body"),
  ]);
  assert.ok(!holds(saved, "forget-marker"), "a deleted value is in the saved file");
  assert.ok(!holds(saved, "kept-old-body"), "an overwritten value is in the saved file");
  assert.ok(holds(saved, "kept-newest-body") && holds(saved, "next-generation"));
  db.close();
});
