// One official socket.io-client, driven line by line for faultlab's interop tests.
//
// stdin: one JSON command per line; stdout: one JSON event per line. The Python
// side (tests/server/test_js_*.py) owns the servers, the faults and the asserts;
// this script only does what the real client does, and reports what it saw.
//
// commands: {"cmd": "connect", "url", "transports"?, "serverOffset"?}
//           {"cmd": "emit", "id", "args": [...], "timeout_ms"?}   (emitWithAck)
//           {"cmd": "close_engine", "reconnect"?}   cut the transport (socket.io.engine.close());
//                  with reconnect: false the client stays away until "rejoin"
//           {"cmd": "hold"}     do not reconnect after the next drop (e.g. a server kill)
//           {"cmd": "rejoin"}   reconnect now, and again by itself after later drops
//           {"cmd": "disconnect"} | {"cmd": "exit"}
// events:   ready, connect {sid, recovered}, disconnect {reason}, connect_error,
//           recv {args, server_offset, csr_offset}, ack {id, value} | ack_timeout {id},
//           error {detail}

import readline from 'node:readline';

import { io } from 'socket.io-client';

let socket = null;

function send(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function connect({ url, transports = ['websocket'], serverOffset = 0 }) {
  socket = io(url, {
    transports,
    auth: { serverOffset },
    reconnectionDelay: 50,
    reconnectionDelayMax: 200,
    randomizationFactor: 0,
  });
  socket.on('connect', () => send({ ev: 'connect', sid: socket.id, recovered: socket.recovered === true }));
  socket.on('disconnect', (reason) => send({ ev: 'disconnect', reason }));
  socket.on('connect_error', (err) => send({ ev: 'connect_error', detail: String(err?.message ?? err) }));
  socket.on('chat message', (...args) => {
    // (content, server_offset[, csr_offset]): the strict policy keeps the highest offset
    const [, serverOffset, csrOffset = null] = args;
    if (Number.isInteger(serverOffset) && serverOffset > socket.auth.serverOffset) {
      socket.auth.serverOffset = serverOffset;
    }
    send({ ev: 'recv', args, server_offset: serverOffset, csr_offset: csrOffset });
  });
}

async function emit({ id, args, timeout_ms: timeoutMs = 5000 }) {
  try {
    const value = await socket.timeout(timeoutMs).emitWithAck('chat message', ...args);
    send({ ev: 'ack', id, value: value ?? null });
  } catch {
    send({ ev: 'ack_timeout', id });
  }
}

const commands = {
  connect,
  emit,
  close_engine: ({ reconnect = true }) => {
    socket.io.reconnection(reconnect);
    socket.io.engine.close();
  },
  hold: () => socket.io.reconnection(false),
  rejoin: () => {
    socket.io.reconnection(true);
    socket.connect();
  },
  disconnect: () => socket.disconnect(),
  exit: () => {
    socket?.disconnect();
    process.exit(0);
  },
};

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    send({ ev: 'error', detail: `not JSON: ${line}` });
    return;
  }
  const run = commands[command.cmd];
  if (!run) {
    send({ ev: 'error', detail: `unknown command ${JSON.stringify(command.cmd)}` });
    return;
  }
  Promise.resolve(run(command)).catch((e) => send({ ev: 'error', detail: String(e?.stack ?? e) }));
}).on('close', () => process.exit(0));

send({ ev: 'ready' });
