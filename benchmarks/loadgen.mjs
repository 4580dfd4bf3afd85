// The benchmark's load generator: the official socket.io-client under node.
//
// usage: node loadgen.mjs '{"url", "senders", "receivers", "rate", "warmup", "duration"}'
//   rate 0: closed loop, every sender keeps one message in flight (emitWithAck);
//   rate R: open loop, R messages/s offered in total, spread over the senders, sent on
//           schedule whether or not earlier ones were acked.
// stdout: one JSON line per event: connected, measure_start, measure_end, result.
// Only acks and deliveries inside the measured window count; the caller reads the
// server's CPU time at measure_start and measure_end.

import { performance } from 'node:perf_hooks';

import { io } from 'socket.io-client';

const cfg = { senders: 1, receivers: 0, rate: 0, warmup: 2, duration: 8, ackTimeoutMs: 10000, ...JSON.parse(process.argv[2]) };
const run = Math.random().toString(36).slice(2, 8);
const PAD = 'x'.repeat(32);

const say = (event) => process.stdout.write(`${JSON.stringify(event)}\n`);

let phase = 'warmup'; // -> measure -> drain
let acks = 0;
let deliveries = 0;
let failures = 0;
let sentInWindow = 0;
const latencies = [];

function client() {
  const socket = io(cfg.url, { transports: ['websocket'], reconnection: false });
  socket.on('chat message', () => {
    if (phase === 'measure') deliveries += 1;
  });
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve(socket));
    socket.once('connect_error', (e) => reject(new Error(`cannot connect to ${cfg.url}: ${e.message}`)));
  });
}

async function sendOne(socket, name, seq) {
  const inWindow = phase === 'measure';
  if (inWindow) sentInWindow += 1;
  const t0 = performance.now();
  try {
    const answer = await socket.timeout(cfg.ackTimeoutMs).emitWithAck('chat message', `${run}-${name}-${seq} ${PAD}`, `${run}-${name}-${seq}`);
    if (answer) throw new Error(JSON.stringify(answer));
    if (phase === 'measure') acks += 1;
    if (inWindow) latencies.push(performance.now() - t0);
  } catch {
    failures += 1;
  }
}

async function closedLoop(socket, name) {
  for (let seq = 0; phase !== 'drain'; seq += 1) await sendOne(socket, name, seq);
}

async function openLoop(socket, name, index) {
  const interval = (1000 * cfg.senders) / cfg.rate;
  const start = performance.now() + (interval * index) / cfg.senders;
  const pending = [];
  for (let seq = 0; phase !== 'drain'; seq += 1) {
    const due = start + seq * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (phase === 'drain') break;
    pending.push(sendOne(socket, name, seq));
  }
  await Promise.all(pending);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const sockets = [];
try {
  for (let i = 0; i < cfg.senders + cfg.receivers; i += 1) sockets.push(await client());
} catch (e) {
  say({ ev: 'error', detail: e.message });
  process.exit(1);
}
say({ ev: 'connected', clients: sockets.length });

const senders = sockets.slice(0, cfg.senders);
const loops = senders.map((s, i) => (cfg.rate > 0 ? openLoop(s, `s${i}`, i) : closedLoop(s, `s${i}`)));

await new Promise((resolve) => setTimeout(resolve, cfg.warmup * 1000));
phase = 'measure';
say({ ev: 'measure_start' });
const t0 = performance.now();
await new Promise((resolve) => setTimeout(resolve, cfg.duration * 1000));
say({ ev: 'measure_end' });
phase = 'drain';
const seconds = (performance.now() - t0) / 1000;
await Promise.race([Promise.all(loops), new Promise((resolve) => setTimeout(resolve, cfg.ackTimeoutMs))]);

latencies.sort((a, b) => a - b);
say({
  ev: 'result',
  seconds,
  acks,
  deliveries,
  failures,
  sent_in_window: sentInWindow,
  clients: sockets.length,
  ack_ms: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), max: latencies.at(-1) ?? null, n: latencies.length },
});
for (const s of sockets) s.disconnect();
process.exit(0);
