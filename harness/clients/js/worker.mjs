// faultlab's driver for the official socket.io-client: one node process runs many
// simulated chat users, each a real `io()` socket with its own Manager, so what is
// tested is the real client's buffering, `retries`/`ackTimeout` queue and connection
// state recovery, not a re-implementation.
//
// It listens on 127.0.0.1 (port 0), prints `faultlab-js-worker listening on
// http://127.0.0.1:PORT` and serves ONE harness connection: commands arrive as JSON
// lines (`{"q", "op", "c", ...}`), events leave as JSON lines, each line an array of
// events (batched per event-loop turn). When the harness goes away the worker
// closes every socket and exits. See docs/official-client.md for the protocol.

import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

async function loadClient() {
  try {
    return await import('socket.io-client');
  } catch {
    // installed outside the repository: resolve from the current directory
    const from = process.env.FAULTLAB_NODE_MODULES_FROM || process.cwd();
    const require = createRequire(path.join(from, 'noop.js'));
    return await import(pathToFileURL(require.resolve('socket.io-client')).href);
  }
}

let ioFactory;
try {
  const mod = await loadClient();
  ioFactory = mod.io ?? mod.default?.io ?? mod.default;
} catch (e) {
  process.stderr.write(`faultlab-js-worker: cannot load socket.io-client (run npm ci at the repository root): ${e.message}\n`);
  process.exit(2);
}

const LEVELS = new Set(['at-most-once', 'buffered', 'at-least-once', 'exactly-once']);
const ACKED = new Set(['at-least-once', 'exactly-once']);
const TRANSPORTS = {
  websocket: { transports: ['websocket'], upgrade: false },
  polling: { transports: ['polling'], upgrade: false },
  upgrade: { transports: ['polling', 'websocket'], upgrade: true },
};

// ---- output: events batched into one JSON array per event-loop turn ----

let conn = null;
let outbox = [];
let flushScheduled = false;

function emitEvent(ev) {
  outbox.push(ev);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}

function flush() {
  flushScheduled = false;
  if (outbox.length === 0 || conn === null || conn.destroyed) return;
  conn.write(`${JSON.stringify(outbox)}\n`);
  outbox = [];
}

class CommandError extends Error {}

// ---- one simulated user ----

/** One chat user: a display session over a real socket.io-client socket. */
class User {
  constructor(cid, cfg) {
    this.cid = cid;
    this.cfg = cfg;
    this.left = false;
    this.socket = null;
    this.announced = false;
    this.offlineTimer = null;
    this.startSession(cfg.resume_from ?? 0);
  }

  startSession(resumeFrom) {
    this.resumeFrom = resumeFrom;
    this.serverOffset = resumeFrom; // what auth.serverOffset sends (the page's persisted offset)
    this.shownOffsets = new Set();
    this.outgoing = new Map(); // content -> {msg, n, done}: this session's messages
  }

  /** A new page load: a new socket (its own Manager and engine). */
  open() {
    const cfg = this.cfg;
    const opts = {
      forceNew: true,
      ...TRANSPORTS[cfg.transport],
      reconnectionDelay: Math.max(1, cfg.reconnect_delay * 1000),
      reconnectionDelayMax: Math.max(1, cfg.reconnect_delay * 1000),
      randomizationFactor: 0,
      // node's default negotiates permessage-deflate; inflating every small event
      // cost the worker most of its CPU, and compression changes no delivery rule
      perMessageDeflate: false,
      timeout: cfg.connect_timeout * 1000,
      // called on every (re)connection; the client merges pid/offset under it when
      // the server granted a pid, unless recovery is off (undefined keys are not sent)
      auth: (cb) => cb(cfg.recovery === 'off'
        ? { serverOffset: this.serverOffset, pid: undefined, offset: undefined }
        : { serverOffset: this.serverOffset }),
    };
    if (ACKED.has(cfg.level)) {
      opts.ackTimeout = cfg.ack_timeout * 1000;
      // retries: 0 disables the client's queue (one try, acked with a timeout)
      opts.retries = cfg.retries === null ? Infinity : cfg.retries;
    }
    const socket = ioFactory(cfg.url, opts);
    this.socket = socket;
    this.announced = false;
    const mine = () => this.socket === socket;
    socket.on('connect', () => {
      if (mine()) this.announce();
    });
    socket.on('disconnect', (reason) => {
      if (!mine()) return;
      this.announced = false;
      emitEvent(['disconnect', this.cid, reason]);
      // what the client's documentation tells an app to do: the client does not
      // reconnect by itself after the server closed the namespace
      if (reason === 'io server disconnect' && !this.left) {
        setTimeout(() => { if (mine() && !this.left) socket.connect(); }, cfg.reconnect_delay * 1000);
      }
    });
    socket.on('connect_error', (err) => {
      if (mine()) emitEvent(['connect_error', this.cid, String(err && err.message)]);
    });
    socket.on('chat message', (...args) => {
      if (!mine()) return;
      this.announce();
      this.receive(args);
    });
    socket.onAnyOutgoing((event, content) => {
      if (event !== 'chat message') return;
      this.announce();
      const rec = this.outgoing.get(content);
      if (rec === undefined) return;
      rec.n += 1;
      emitEvent(['attempt', this.cid, rec.msg, rec.n]);
      if (!ACKED.has(cfg.level)) rec.done = true; // fire and forget: nothing more to learn
    });
  }

  /**
   * Record `connect` once per connection, as soon as the CONNECT reply made the
   * socket connected: the client hands replayed events and its queued sends over
   * before it emits "connect", and the history must not show them before it.
   */
  announce() {
    const socket = this.socket;
    if (this.announced || !socket.connected) return;
    this.announced = true;
    emitEvent(['connect', this.cid, socket.id, Boolean(socket.recovered)]);
  }

  /** The receive policy (DESIGN §3.2); the CSR offset is the last string argument. */
  receive(args) {
    const [content, serverOffset] = args;
    const csr = args.length > 2 && typeof args.at(-1) === 'string' ? args.at(-1) : null;
    const isId = Number.isInteger(serverOffset);
    let shown;
    if (this.cfg.receive === 'naive') {
      shown = true;
      this.serverOffset = serverOffset;
    } else {
      // a non-integer offset is not a row id: it has no place in the conversation
      shown = isId && !this.shownOffsets.has(serverOffset);
      if (shown && serverOffset > this.serverOffset) this.serverOffset = serverOffset;
    }
    if (shown && isId) this.shownOffsets.add(serverOffset);
    emitEvent(['recv', this.cid, content, serverOffset, csr, shown]);
  }

  send(msg, content, clientOffset) {
    if (this.left) throw new CommandError(`${this.cid} has left`);
    const rec = { msg, n: 0, done: false };
    this.outgoing.set(content, rec);
    const args = clientOffset === null ? [content] : [content, clientOffset];
    const socket = this.socket;
    const level = this.cfg.level;
    if (level === 'at-most-once') {
      if (!socket.connected) {
        this.finish(rec, 'give_up', 'offline');
        return;
      }
      socket.emit('chat message', ...args);
    } else if (level === 'buffered') {
      socket.emit('chat message', ...args); // buffered by the client while offline
    } else {
      socket.emit('chat message', ...args, (err, response) => {
        if (this.outgoing.get(content) !== rec || rec.done) return;
        if (err) {
          const why = this.cfg.retries ? `retries exhausted: ${err.message}` : err.message;
          this.finish(rec, 'give_up', why);
        } else if (response && typeof response === 'object' && 'error' in response) {
          this.finish(rec, 'reject', String(response.error));
        } else {
          this.finish(rec, 'ack');
        }
      });
    }
  }

  finish(rec, op, detail) {
    rec.done = true;
    emitEvent(detail === undefined ? [op, this.cid, rec.msg] : [op, this.cid, rec.msg, detail]);
  }

  /** Close this session's socket; what it still held is given up. */
  endSession(reason) {
    clearTimeout(this.offlineTimer);
    if (this.socket !== null) this.socket.disconnect();
    for (const rec of this.outgoing.values()) {
      if (!rec.done) this.finish(rec, 'give_up', reason);
    }
  }

  dropTransport() {
    this.socket.io.engine?.close();
  }

  goOffline(seconds) {
    clearTimeout(this.offlineTimer);
    this.socket.disconnect();
    const socket = this.socket;
    this.offlineTimer = setTimeout(() => {
      if (this.socket === socket && !this.left) socket.connect();
    }, seconds * 1000);
  }

  refresh(persistOffset) {
    this.endSession('session ended');
    const resumeFrom = persistOffset ? this.serverOffset : 0;
    this.startSession(resumeFrom);
    emitEvent(['session_start', this.cid, resumeFrom]);
    this.open();
    return resumeFrom;
  }
}

// ---- commands ----

const users = new Map();

function user(cmd) {
  const u = users.get(cmd.c);
  if (u === undefined) throw new CommandError(`unknown client ${JSON.stringify(cmd.c)}`);
  return u;
}

function checkConfig(cfg) {
  if (!cfg || typeof cfg !== 'object') throw new CommandError('open needs a config object');
  if (typeof cfg.url !== 'string' || !/^https?:\/\//.test(cfg.url)) {
    throw new CommandError(`config.url must be an http(s) URL, got ${JSON.stringify(cfg.url)}`);
  }
  if (!LEVELS.has(cfg.level)) throw new CommandError(`unknown level ${JSON.stringify(cfg.level)}`);
  if (!(cfg.transport in TRANSPORTS)) throw new CommandError(`unknown transport ${JSON.stringify(cfg.transport)}`);
  if (cfg.receive !== 'naive' && cfg.receive !== 'strict') {
    throw new CommandError(`unknown receive policy ${JSON.stringify(cfg.receive)}`);
  }
}

const COMMANDS = {
  open(cmd) {
    if (typeof cmd.c !== 'string' || cmd.c === '') throw new CommandError('open needs a client id "c"');
    if (users.has(cmd.c)) throw new CommandError(`client ${cmd.c} is already open`);
    checkConfig(cmd.config);
    const u = new User(cmd.c, cmd.config);
    users.set(cmd.c, u);
    u.open();
  },
  send(cmd) {
    if (typeof cmd.content !== 'string') throw new CommandError('send needs a string content');
    const offset = cmd.client_offset ?? null;
    if (offset !== null && typeof offset !== 'string') throw new CommandError('client_offset must be a string or null');
    user(cmd).send(cmd.msg, cmd.content, offset);
  },
  drop(cmd) { user(cmd).dropTransport(); },
  offline(cmd) {
    if (typeof cmd.seconds !== 'number' || cmd.seconds < 0) throw new CommandError('offline needs seconds >= 0');
    user(cmd).goOffline(cmd.seconds);
  },
  refresh(cmd) { return user(cmd).refresh(Boolean(cmd.persist)); },
  leave(cmd) {
    const u = user(cmd);
    u.left = true;
    u.endSession('left');
  },
  close(cmd) {
    const u = user(cmd);
    u.left = true;
    u.endSession('session ended');
    users.delete(cmd.c);
  },
  stats() {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    return { clients: users.size, rss: mem.rss, cpu_user_us: cpu.user, cpu_system_us: cpu.system };
  },
};

function handle(line) {
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    emitEvent(['reply', null, false, `not a JSON line: ${e.message}`]);
    return;
  }
  const q = cmd && typeof cmd === 'object' ? cmd.q ?? null : null;
  const fn = cmd && Object.hasOwn(COMMANDS, cmd.op) ? COMMANDS[cmd.op] : undefined;
  if (fn === undefined) {
    emitEvent(['reply', q, false, `unknown op ${JSON.stringify(cmd && cmd.op)}`]);
    return;
  }
  try {
    emitEvent(['reply', q, true, fn(cmd) ?? null]);
  } catch (e) {
    if (!(e instanceof CommandError)) process.stderr.write(`faultlab-js-worker: ${e.stack}\n`);
    emitEvent(['reply', q, false, e.message]);
  }
}

function shutdown(code) {
  for (const u of users.values()) {
    u.left = true;
    clearTimeout(u.offlineTimer);
    u.socket?.disconnect();
  }
  users.clear();
  flush();
  if (conn !== null) conn.end();
  process.exit(code);
}

const server = net.createServer((socket) => {
  conn = socket;
  socket.setNoDelay(true);
  let pending = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => {
    pending += chunk;
    let nl;
    while ((nl = pending.indexOf('\n')) >= 0) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      if (line.trim() !== '') handle(line);
    }
  });
  socket.on('close', () => shutdown(0));
  socket.on('error', () => shutdown(0));
  server.close(); // one harness per worker: stop accepting
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  process.stdout.write(`faultlab-js-worker listening on http://127.0.0.1:${port}\n`);
});

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));
