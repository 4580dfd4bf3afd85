// faultlab's Node peer: the Socket.IO tutorial's chat server on the official
// `socket.io` package and SQLite, configured from the environment. See
// docs/node-peer.md for the settings and how faultlab starts it.

import { createServer } from 'node:http';

import { Server } from 'socket.io';

import { attachChat } from './chat.js';
import { ConfigError, readConfig } from './config.js';
import { Store } from './store.js';

function fail(message) {
  process.stderr.write(`node-peer: ${message}\n`);
  process.exit(2);
}

let config;
let store;
try {
  config = readConfig();
  store = new Store(config.db, {
    unique: config.delivery === 'exactly-once',
    busyTimeoutMs: config.busyTimeoutMs,
    pragmas: config.pragmas,
  });
} catch (e) {
  fail(e instanceof ConfigError ? e.message : `cannot open the store ${config?.db}: ${e.message}`);
}

function health(res) {
  let body;
  try {
    const { n } = store.stats();
    body = { status: 'ok', level: config.delivery, recovery: config.recovery, messages: n, pid: process.pid };
  } catch (e) {
    res.writeHead(503, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'store unavailable', detail: e.message }));
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

const http = createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/healthz') return health(res);
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
});

const io = new Server(http, {
  pingInterval: config.pingIntervalMs,
  pingTimeout: config.pingTimeoutMs,
  ...(config.recovery === 'memory' && {
    connectionStateRecovery: { maxDisconnectionDuration: config.recoveryWindowMs, skipMiddlewares: true },
  }),
});
attachChat(io, store, config);

http.on('error', (e) => fail(`cannot listen on ${config.host}:${config.port}: ${e.message}`));
http.listen(config.port, config.host, () => {
  const { address, port } = http.address();
  const host = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`faultlab-server listening on http://${host}:${port}\n`);
});

let stopping = false;
function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  process.stderr.write(`node-peer: ${signal}: closing\n`);
  // io.close() disconnects every client and closes the HTTP server; every insert
  // already committed and acked synchronously, so the store can close at once.
  io.close(() => {
    store.close();
    process.exit(0);
  });
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
