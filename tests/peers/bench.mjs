// The two-client workloads of Confab's load generator (`bench/src/bin/loadgen`), run against
// one peer: `node bench.mjs --peer <relay|y-websocket|hocuspocus|automerge-repo> --mode
// <burst|paced> [--messages 20000 --batch 16 --window 256 --rate 1000 --seconds 10
// --limit-s 30]`. Starts the peer's server (server.mjs) in its own process on 127.0.0.1,
// connects two clients (one process, one event loop, as the load generator's one thread),
// prints one JSON line.
//
// - burst: each client writes its half of `--messages` chat messages, `--batch` per
//   transaction (one frame), at most `--window` of its messages not yet at the other client.
//   The rate is messages at the other client / (last arrival − first send). These peers
//   send no acks, so arrival at the other client stands in for Confab's ack (which comes
//   before its push). Bounded by `--limit-s`: a slower peer reports what arrived by then.
// - paced: `--rate` messages per second in total, alternating clients, one per transaction,
//   for `--seconds`; latency is send → arrival at the other client (one clock: one process).
//
// A message is {id, author, body (40 chars), created}: in a Y.Map by id for the Yjs peers, in
// an Automerge list (strings as ImmutableString, not collaborative text) for automerge-repo,
// JSON text for the relay.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';

const { values: opts } = parseArgs({
  options: {
    peer: { type: 'string' },
    mode: { type: 'string', default: 'burst' },
    messages: { type: 'string', default: '20000' },
    batch: { type: 'string', default: '16' },
    window: { type: 'string', default: '256' },
    rate: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '10' },
    'limit-s': { type: 'string', default: '30' },
  },
});
const BODY = 'x'.repeat(40);
const DRAIN_MS = 5000;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function startServer(peer, port) {
  const child = spawn(process.execPath, [new URL('./server.mjs', import.meta.url).pathname, peer, String(port)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${peer} server did not start`)), 10000);
    child.on('exit', (code) => reject(new Error(`${peer} server exited (${code})`)));
    child.stdout.on('data', (d) => {
      if (String(d).includes('listening')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
  });
}

/** utime + stime of a process, in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat(5); clock ticks of 10 ms on Linux.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// A client: `ready` resolves once it is connected and has the document; `send(msgs)` writes
// them in one transaction; `onArrive(ids)` is called with the ids of messages the other
// client wrote, as they arrive.
async function yjsClient(peer, url, onArrive) {
  const Y = await import('yjs');
  const doc = new Y.Doc();
  let provider;
  if (peer === 'y-websocket') {
    const { WebsocketProvider } = await import('y-websocket');
    // No BroadcastChannel: both clients share this process and would bypass the server.
    provider = new WebsocketProvider(url, 'bench', doc, { WebSocketPolyfill: WebSocket, disableBc: true });
  } else {
    const { HocuspocusProvider } = await import('@hocuspocus/provider');
    provider = new HocuspocusProvider({ url, name: 'bench', document: doc, WebSocketPolyfill: WebSocket });
  }
  // A map keyed by message id: its events name the keys a transaction changed, where a
  // Y.Array's delta walks the whole list on every event (quadratic over a run).
  const messages = doc.getMap('messages');
  messages.observe((event) => {
    if (event.transaction.local) return;
    onArrive([...event.keysChanged]);
  });
  await new Promise((resolve) => {
    if (provider.synced) resolve();
    else provider.on('synced', resolve);
  });
  return {
    send: (msgs) =>
      doc.transact(() => {
        for (const m of msgs) messages.set(m.id, m);
      }),
    close: () => provider.destroy(),
  };
}

async function automergeClient(url, onArrive, self, docUrl) {
  const first = docUrl === undefined;
  const { Repo } = await import('@automerge/automerge-repo');
  const { WebSocketClientAdapter } = await import('@automerge/automerge-repo-network-websocket');
  const { ImmutableString } = await import('@automerge/automerge');
  const repo = new Repo({ network: [new WebSocketClientAdapter(url)] });
  let handle;
  if (first) {
    handle = repo.create({ messages: [] });
  } else {
    handle = await repo.find(docUrl);
  }
  // Patches come in several shapes (one object with its puts, or merged inserts), so read
  // the list itself: every message is appended, so what is new since the last event is
  // near the end; walk back until as many unseen ones as the list grew by are found.
  const mine = `${self}-`;
  const seen = new Set();
  let length = 0;
  handle.on('change', ({ doc }) => {
    const list = doc.messages;
    let added = list.length - length;
    length = list.length;
    const ids = [];
    for (let i = list.length - 1; i >= 0 && added > 0; i--) {
      const id = String(list[i].id);
      if (seen.has(id)) continue;
      seen.add(id);
      added -= 1;
      if (!id.startsWith(mine)) ids.push(id);
    }
    if (ids.length) onArrive(ids);
  });
  if (first) {
    // The server must hold the document before the second client asks for it.
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
  return {
    url: handle.url,
    send: (msgs) =>
      handle.change((d) => {
        for (const m of msgs) {
          d.messages.push({
            id: new ImmutableString(m.id),
            author: new ImmutableString(m.author),
            body: new ImmutableString(m.body),
            created: m.created,
          });
        }
      }),
    close: () => repo.shutdown(),
  };
}

async function relayClient(url, onArrive) {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  ws.on('message', (data) => onArrive(JSON.parse(data).map((m) => m.id)));
  await new Promise((resolve, reject) => {
    ws.on('open', resolve);
    ws.on('error', reject);
  });
  return { send: (msgs) => ws.send(JSON.stringify(msgs)), close: () => ws.close() };
}

async function connect(peer, url, onArrive) {
  const clients = [];
  if (peer === 'automerge-repo') {
    const a = await automergeClient(url, (ids) => onArrive(0, ids), 0);
    clients.push(a, await automergeClient(url, (ids) => onArrive(1, ids), 1, a.url));
  } else {
    for (const i of [0, 1]) {
      const arrive = (ids) => onArrive(i, ids);
      clients.push(peer === 'relay' ? await relayClient(url, arrive) : await yjsClient(peer, url, arrive));
    }
  }
  return clients;
}

const message = (from, n) => ({ id: `${from}-${n}`, author: `user${from}`, body: BODY, created: Date.now() });

function percentile(sorted, p) {
  if (!sorted.length) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function burst(peer, url) {
  const total = Number(opts.messages);
  const batch = Number(opts.batch);
  const window = Number(opts.window);
  const share = [Math.ceil(total / 2), Math.floor(total / 2)];
  const sent = [0, 0];
  const got = [0, 0]; // messages of client i that arrived at the other one
  let first = 0;
  let last = 0;
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  let clients;
  const pump = (i) => {
    while (sent[i] < share[i] && sent[i] - got[i] < window) {
      const n = Math.min(batch, share[i] - sent[i], window - (sent[i] - got[i]));
      const msgs = [];
      for (let k = 0; k < n; k++) msgs.push(message(i, sent[i] + k));
      sent[i] += n;
      clients[i].send(msgs);
    }
  };
  clients = await connect(peer, url, (receiver, ids) => {
    const from = 1 - receiver;
    got[from] += ids.length;
    last = performance.now();
    if (got[0] + got[1] >= total) done();
    else queueMicrotask(() => pump(from));
  });
  first = performance.now();
  const limit = setTimeout(done, Number(opts['limit-s']) * 1000);
  pump(0);
  pump(1);
  await finished;
  clearTimeout(limit);
  const delivered = got[0] + got[1];
  return {
    clients,
    result: {
      messages_sent: sent[0] + sent[1],
      delivered,
      per_s: delivered / Math.max(1e-9, (last - first) / 1000),
      complete: delivered >= total,
    },
  };
}

async function paced(peer, url) {
  const rate = Number(opts.rate);
  const total = Math.round(rate * Number(opts.seconds));
  const sentAt = new Map();
  const latencies = [];
  const clients = await connect(peer, url, (_receiver, ids) => {
    const now = performance.now();
    for (const id of ids) {
      const at = sentAt.get(id);
      if (at !== undefined) {
        latencies.push(now - at);
        sentAt.delete(id);
      }
    }
  });
  const start = performance.now();
  let n = 0;
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (n < total && start + (n * 1000) / rate <= now) {
        const from = n % 2;
        const m = message(from, n);
        sentAt.set(m.id, performance.now());
        clients[from].send([m]);
        n += 1;
      }
      // A peer that cannot keep up stops being fed 2 s after the end: the rest is unsent.
      if (n >= total || now > start + Number(opts.seconds) * 1000 + 2000) resolve();
      else setTimeout(tick, Math.max(0, start + (n * 1000) / rate - performance.now()));
    };
    tick();
  });
  const drainUntil = performance.now() + DRAIN_MS;
  while (sentAt.size && performance.now() < drainUntil) await new Promise((r) => setTimeout(r, 20));
  latencies.sort((a, b) => a - b);
  return {
    clients,
    result: {
      messages_sent: n,
      unsent: total - n,
      delivered: latencies.length,
      missing: sentAt.size,
      p50_ms: percentile(latencies, 50),
      p99_ms: percentile(latencies, 99),
    },
  };
}

const peer = opts.peer;
const port = await freePort();
const server = await startServer(peer, port);
const url = `ws://127.0.0.1:${port}`;
const cpuBefore = cpuMs(server.pid);
const clientCpuBefore = process.cpuUsage();
const wallStart = performance.now();
let exit = 0;
try {
  const { clients, result } = await (opts.mode === 'paced' ? paced : burst)(peer, url);
  const serverCpu = cpuMs(server.pid) - cpuBefore;
  const clientCpu = process.cpuUsage(clientCpuBefore);
  for (const c of clients) c.close();
  console.log(
    JSON.stringify({
      peer,
      mode: opts.mode,
      ...result,
      wall_s: (performance.now() - wallStart) / 1000,
      server_cpu_ms_per_1k: (serverCpu * 1000) / Math.max(1, result.delivered),
      clients_cpu_ms_per_1k: (clientCpu.user + clientCpu.system) / Math.max(1, result.delivered),
    }),
  );
} catch (e) {
  console.error(`${peer} ${opts.mode}: ${e?.stack ?? e}`);
  exit = 1;
} finally {
  server.kill('SIGKILL');
}
process.exit(exit);
