// One peer's server on 127.0.0.1, in its own process (as confab-server is): `node server.mjs
// <peer> <port>`. Prints `listening <port>` once it accepts connections. Every peer keeps
// its documents in memory (no persistence): a ceiling for them, where Confab's numbers are
// durable and permission-checked commits.
//
// - relay: the floor. Every frame is sent as it is to the room's other connections.
// - y-websocket: the reference server of y-websocket 1 (`bin/utils.js`).
// - hocuspocus: `Hocuspocus` mounted on a `ws` server (its `listen()` ignores the address).
// - automerge-repo: a `Repo` with the `ws` server adapter, sharing every document.
import http from 'node:http';
import { createRequire } from 'node:module';
import { WebSocketServer } from 'ws';

const require = createRequire(import.meta.url);
const [peer, portArg] = process.argv.slice(2);
const port = Number(portArg);
const server = http.createServer((_req, res) => {
  res.writeHead(404);
  res.end();
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });

if (peer === 'relay') {
  const room = new Set();
  wss.on('connection', (ws) => {
    room.add(ws);
    ws.on('message', (data, isBinary) => {
      for (const other of room) {
        if (other !== ws) other.send(data, { binary: isBinary });
      }
    });
    ws.on('close', () => room.delete(ws));
  });
} else if (peer === 'y-websocket') {
  const { setupWSConnection } = require('y-websocket/bin/utils');
  wss.on('connection', (ws, req) => setupWSConnection(ws, req, { docName: 'bench', gc: true }));
} else if (peer === 'hocuspocus') {
  const { Hocuspocus } = await import('@hocuspocus/server');
  const hocuspocus = new Hocuspocus({ quiet: true, debounce: 0 });
  wss.on('connection', (ws, req) => hocuspocus.handleConnection(ws, req));
} else if (peer === 'automerge-repo') {
  const { Repo } = await import('@automerge/automerge-repo');
  const { NodeWSServerAdapter } = await import('@automerge/automerge-repo-network-websocket');
  // Kept alive by the adapter's listeners.
  globalThis.repo = new Repo({
    network: [new NodeWSServerAdapter(wss)],
    peerId: 'bench-server',
    sharePolicy: async () => true,
  });
} else {
  console.error(`unknown peer ${peer}`);
  process.exit(2);
}

server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
