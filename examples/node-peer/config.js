// The peer's settings, read from the environment. A bad value is a precise,
// one-line error (the caller exits 2), never a silent default.

const LEVELS = ['at-most-once', 'buffered', 'at-least-once', 'exactly-once'];
const RECOVERY = ['off', 'memory'];

export class ConfigError extends Error {}

function integer(env, name, fallback, { min = 0 } = {}) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min) {
    throw new ConfigError(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

function choice(env, name, allowed, fallback) {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!allowed.includes(raw)) {
    throw new ConfigError(`${name} must be one of ${allowed.join('|')}, got ${JSON.stringify(raw)}`);
  }
  return raw;
}

/** "journal_mode=WAL;synchronous=NORMAL" -> [["journal_mode", "WAL"], ...] */
export function parsePragmas(spec) {
  if (!spec) return [];
  return spec.split(';').filter((part) => part.trim() !== '').map((part) => {
    const m = /^\s*([A-Za-z_]+)\s*=\s*([A-Za-z0-9_\-]+)\s*$/.exec(part);
    if (!m) throw new ConfigError(`SQLITE_PRAGMAS: cannot read ${JSON.stringify(part)}; expected name=value`);
    return [m[1], m[2]];
  });
}

export function readConfig(env = process.env) {
  const port = integer(env, 'PORT', 0);
  if (port > 65535) throw new ConfigError(`PORT must be at most 65535, got ${port}`);
  return {
    host: env.HOST || '127.0.0.1',
    port,
    db: env.DB || 'chat.db',
    delivery: choice(env, 'DELIVERY', LEVELS, 'exactly-once'),
    recovery: choice(env, 'RECOVERY', RECOVERY, 'memory'),
    pingIntervalMs: integer(env, 'PING_INTERVAL_MS', 25000, { min: 1 }),
    pingTimeoutMs: integer(env, 'PING_TIMEOUT_MS', 20000, { min: 1 }),
    recoveryWindowMs: integer(env, 'RECOVERY_WINDOW_MS', 120000, { min: 1 }),
    busyTimeoutMs: integer(env, 'BUSY_TIMEOUT_MS', 5000),
    maxContent: integer(env, 'MAX_CONTENT', 4096, { min: 1 }),
    pragmas: parsePragmas(env.SQLITE_PRAGMAS),
  };
}
