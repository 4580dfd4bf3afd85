// The chat contract (faultlab DESIGN §3.1) the way the Socket.IO tutorial writes
// it: insert, broadcast the row with its id, then ack; a duplicate client offset
// is acked and not stored again; a failed insert is not acked, so the client
// retries; bad input is acked with {error, detail} and changes nothing.

const MAX_CLIENT_OFFSET = 128;

function log(message) {
  process.stderr.write(`${new Date().toISOString()} node-peer ${message}\n`);
}

function typeName(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  return { string: 'str', number: Number.isInteger(value) ? 'int' : 'float', boolean: 'bool', object: 'dict' }[typeof value] ?? typeof value;
}

/**
 * Returns [code, detail] for a malformed `chat message`, or null when it is valid.
 * The codes are the reference server's (faultlab.server.validation), so a harness
 * reads the same answer from either target.
 */
export function validate(args, { delivery, maxContent }) {
  if (args.length === 0) return ['missing_content', 'expected (content[, client_offset]), got no argument'];
  if (args.length > 2) {
    return ['too_many_arguments', `expected (content[, client_offset]), got ${args.length} arguments`];
  }
  const [content, clientOffset = null] = args;
  if (typeof content !== 'string') return ['content_not_string', `content must be a string, got ${typeName(content)}`];
  if (content === '') return ['content_empty', 'content must not be empty'];
  const size = Buffer.byteLength(content, 'utf8');
  if (size > maxContent) return ['content_too_large', `content is ${size} bytes, the limit is ${maxContent}`];
  if (clientOffset === null) {
    return delivery === 'exactly-once'
      ? ['client_offset_missing', 'exactly-once needs (content, client_offset)']
      : null;
  }
  if (typeof clientOffset !== 'string') {
    return ['client_offset_not_string', `client_offset must be a string, got ${typeName(clientOffset)}`];
  }
  if (clientOffset === '') return ['client_offset_empty', 'client_offset must not be empty'];
  const length = [...clientOffset].length; // code points, as the reference server counts
  if (length > MAX_CLIENT_OFFSET) {
    return ['client_offset_too_long', `client_offset is ${length} characters, the limit is ${MAX_CLIENT_OFFSET}`];
  }
  return null;
}

/** auth.serverOffset as the contract reads it: anything but a non-negative integer is 0. */
export function startOffset(auth, maxId) {
  const raw = auth && typeof auth === 'object' ? auth.serverOffset : undefined;
  if (raw === undefined || raw === null) return 0;
  if (!Number.isSafeInteger(raw) || raw < 0) {
    log(`invalid serverOffset ${JSON.stringify(raw)}: treated as 0`);
    return 0;
  }
  if (raw > maxId) {
    log(`serverOffset ${raw} is above the highest stored id ${maxId} (a reset store): sending everything`);
    return 0;
  }
  return raw;
}

export function attachChat(io, store, config) {
  io.on('connection', (socket) => {
    socket.on('chat message', (...args) => {
      const ack = typeof args.at(-1) === 'function' ? args.pop() : null;
      const bad = validate(args, config);
      if (bad) {
        const [error, detail] = bad;
        log(`rejected from ${socket.id}: ${error}: ${detail}`);
        if (ack) ack({ error, detail });
        return;
      }
      const [content, clientOffset = null] = args;
      let id;
      try {
        id = store.insert(content, clientOffset);
      } catch (e) {
        if (e.code === 'SQLITE_CONSTRAINT_UNIQUE') {
          if (ack) ack();
          return;
        }
        log(`insert failed, not acked (client offset ${JSON.stringify(clientOffset)}): ${e.code}: ${e.message}`);
        return;
      }
      io.emit('chat message', content, id);
      if (ack) ack();
    });

    if (!socket.recovered) {
      // synchronous from the first row to the last: no broadcast can interleave
      try {
        const from = startOffset(socket.handshake.auth, store.stats().max);
        for (const row of store.after(from)) socket.emit('chat message', row.content, row.id);
      } catch (e) {
        log(`catch-up failed for ${socket.id}: ${e.code}: ${e.message}`);
      }
    }
  });
}
