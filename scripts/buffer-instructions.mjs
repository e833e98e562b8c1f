#!/usr/bin/env node
/**
 * Instructions per event the session buffer's scripts cost inside Redis, counted
 * by valgrind's callgrind: deterministic, so two checkouts compare exactly on a
 * shared, noisy machine where timings do not.
 *
 *   node scripts/buffer-instructions.mjs [--against <checkout>] [--events N] [--sweep | --long]
 *
 * Needs valgrind (apt-get install valgrind) and a built checkout (npm run build).
 * Starts redis-server (REDIS_BIN, default redis-server on the PATH) under callgrind,
 * ingests the bench's generated stream in chunks of 2 000 events (16 shards), and
 * prints the instructions per event of the ingest calls, or with --sweep of the
 * sweep that emits and finalises everything afterwards. With --against, the other
 * checkout runs the same stream in its own redis-server, and the ratio is printed.
 * With --long, the instructions of one-event calls on one session of 1 000 events
 * (screen views and clicks by turns): 20 appended after the last event, then 20
 * late ones in its middle, as `bench` times them on sessions of up to 50 000.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { against: { type: 'string' }, events: { type: 'string', default: '20000' }, sweep: { type: 'boolean', default: false }, long: { type: 'boolean', default: false } } });
const events = Number(values.events);
const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

async function count(checkout) {
  const load = (rel) => import(pathToFileURL(path.join(checkout, 'dist', rel)).href);
  const { generateEvents } = await load('generate/model.js');
  const { normalizeEvent } = await load('event/normalize.js');
  const { SessionBuffer } = await load('buffer/session-buffer.js');
  const { scripts } = await load('buffer/scripts.js');
  const { loadConfig } = await load('config.js');
  const { Redis } = await import(pathToFileURL(path.join(here, 'node_modules/ioredis/built/index.js')).href);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-callgrind-'));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.out`, process.env.REDIS_BIN ?? 'redis-server', '--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  for (let i = 0; ; i += 1) {
    try {
      execFileSync('redis-cli', ['-p', String(port), 'ping'], { stdio: 'ignore' });
      break;
    } catch {
      if (i > 100) throw new Error('redis-server under valgrind did not start');
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  const redis = new Redis({ port });
  try {
    const generated = generateEvents({ sessions: Math.ceil(events / 8.4), seed: 42 }).slice(0, events);
    const normalized = generated.map((e) => normalizeEvent(e, { receivedAtMs: Date.parse(e.createdAt), maxFutureMs: 3_600_000 }));
    const settings = { ...loadConfig({}), keyPrefix: 'cg', bufferShards: 16 };
    const buffer = new SessionBuffer(redis, settings);
    await redis.script('LOAD', scripts.ingest.source);
    await redis.script('LOAD', scripts.sweep.source);
    const zero = () => execFileSync('callgrind_control', ['-z', String(child.pid)], { stdio: 'ignore' });
    if (values.long) await longSessionCalls(buffer, normalized[0], zero);
    else await stream(buffer, normalized, settings, zero);
    execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
  } finally {
    await redis.quit();
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
  // the dump (cg.out.1) holds what ran since the counters were zeroed
  const dump = readdirSync(dir).filter((f) => f.startsWith('cg.out.')).sort().at(0);
  const total = Number(/summary: (\d+)/.exec(readFileSync(path.join(dir, dump), 'utf8'))?.[1]);
  rmSync(dir, { recursive: true, force: true });
  return total / (values.long ? LONG_PROBES * 2 : events);
}

/** The bench's stream in chunks of 2 000 events; counts the ingest calls, or with --sweep the sweep after them. */
async function stream(buffer, normalized, settings, zero) {
  if (!values.sweep) zero();
  let clock = 0;
  for (let i = 0; i < normalized.length; i += 2_000) {
    const chunk = normalized.slice(i, i + 2_000);
    for (const e of chunk) clock = Math.max(clock, e.createdAtMs);
    await buffer.ingest(chunk, clock);
  }
  if (values.sweep) {
    zero();
    await buffer.sweep(clock + settings.sessionTimeoutMs + settings.graceMs + 1);
  }
}

const LONG_SIZE = 1_000;
const LONG_PROBES = 20;

/** Builds one session of LONG_SIZE events, then zeroes the counters and makes the probe calls of `bench`'s longSession. */
async function longSessionCalls(buffer, template, zero) {
  const t0 = 1_700_000_000_000;
  const at = (i) => t0 + i * 1_000;
  const event = (index, createdAtMs, kind) => ({ ...template, id: `ls${index}`, sessionId: 'long-session', kind, name: kind === 'v' ? 'screen_view' : 'click', createdAtMs });
  for (let built = 0; built < LONG_SIZE; built += 500) {
    const batch = Array.from({ length: 500 }, (_, k) => event(built + k, at(built + k), (built + k) % 2 === 0 ? 'v' : 'o'));
    await buffer.sweep(at(built + 500));
    await buffer.ingest(batch, at(built + 500));
  }
  const now = at(LONG_SIZE + LONG_PROBES * 2);
  zero();
  for (let i = 0; i < LONG_PROBES; i += 1) await buffer.ingest([event(10_000_000 + i, at(LONG_SIZE) + i, 'o')], now);
  for (let i = 0; i < LONG_PROBES; i += 1) await buffer.ingest([event(20_000_000 + i, at(LONG_SIZE / 2) + 1 + i, i % 2 === 0 ? 'v' : 'o')], now);
}

const what = values.long ? `one-event calls on a ${LONG_SIZE}-event session (appended and late), per call` : values.sweep ? 'sweep (emit + finalise)' : 'ingest';
const current = await count(here);
let line = `${what}: ${values.long ? '' : `${events} events, `}${Math.round(current)} instructions per ${values.long ? 'call' : 'event'} (${here})`;
if (values.against) {
  const against = await count(path.resolve(values.against));
  line += `; ${Math.round(against)} (${path.resolve(values.against)}); ratio ${(current / against).toFixed(3)}`;
}
console.log(line);
