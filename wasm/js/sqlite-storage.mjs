// A Confab storage adapter over SQLite: the example a mobile host (Capacitor, a React Native
// webview, Node) adapts to its own SQLite binding. It is written against sql.js's API
// (`run`, `prepare`/`bind`/`step`/`get`), which the Node suite uses; a native plugin needs
// only these three calls changed. The adapter knows none of the client's keys: it stores
// what it is told (wasm/README.md, "Storage").
//
//   import initSqlJs from "sql.js";
//   const SQL = await initSqlJs();
//   const db = new SQL.Database(existsSync(file) ? readFileSync(file) : undefined);
//   const storage = sqliteStorage(db, { persist: (db) => writeFileSync(file, db.export()) });
//   new ConfabClient({ ..., storage });

/** Keys sort by UTF-16 code unit in JavaScript and by byte in SQLite; the client's keys are
 * ASCII, where the two agree. A prefix scan ends below the prefix followed by U+FFFF. */
const SCHEMA = "CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID";

function rows(db, sql, params) {
  const stmt = db.prepare(sql);
  try {
    stmt.bind(params);
    const out = [];
    while (stmt.step()) out.push(stmt.get());
    return out;
  } finally {
    stmt.free();
  }
}

/**
 * The adapter (`StorageAdapter`: get, scan, write) over an open sql.js `Database`.
 * `persist(db)`, when given, runs after every committed write: sql.js keeps the database in
 * memory, so that is where a host saves it (a file, the device's storage). A SQLite that
 * writes its own file needs none.
 */
export function sqliteStorage(db, { persist } = {}) {
  db.run(SCHEMA);
  // A deleted or replaced row's bytes are zeroed in its page, not left in free space that
  // `db.export()` would save: a part replaced by its next generation, a deleted message's
  // search record, leave the file (wasm/README.md, "Storage").
  db.run("PRAGMA secure_delete = ON");
  // One write at a time: the client queues its writes in order already; this keeps a
  // persist of one batch from interleaving with the next.
  let last = Promise.resolve();
  return {
    async get(key) {
      const [row] = rows(db, "SELECT v FROM kv WHERE k = ?", [key]);
      return row ? new Uint8Array(row[0]) : undefined;
    },
    async scan(prefix) {
      return rows(db, "SELECT k, v FROM kv WHERE k >= ?1 AND k < ?1 || char(65535) ORDER BY k", [prefix]).map(
        ([k, v]) => [k, new Uint8Array(v)],
      );
    },
    write(ops) {
      const run = async () => {
        db.run("BEGIN");
        try {
          for (const op of ops) {
            if (op.op === "put") db.run("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", [op.key, op.value]);
            else if (op.op === "delete") db.run("DELETE FROM kv WHERE k = ?", [op.key]);
            else if (op.op === "deletePrefix")
              db.run("DELETE FROM kv WHERE k >= ?1 AND k < ?1 || char(65535)", [op.prefix]);
            else throw new Error(`unknown store operation ${JSON.stringify(op.op)}`);
          }
          db.run("COMMIT");
        } catch (e) {
          db.run("ROLLBACK");
          throw e;
        }
        if (persist) await persist(db);
      };
      last = last.then(run, run);
      return last;
    },
  };
}
