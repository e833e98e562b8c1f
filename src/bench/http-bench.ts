/**
 * `event-lens bench http`: load from autocannon (a well-kept HTTP load
 * generator, MIT) against a real `event-lens serve` process on a private
 * redis-server, next to the same server's no-op route in the same run:
 *
 *   noop   POST /bench/noop: fastify parses the body and answers (the ceiling)
 *   track  POST /track: the whole intake (auth, derivations, session script,
 *          coalesced enqueue), with 1 000 distinct visitors
 *
 * Rounds alternate noop, track, noop, track and each figure is the mean of its
 * rounds, so a noisy moment of this shared machine hits both. Events reaching
 * the queue are read from the server's own counter (events Redis acknowledged).
 * Then the same load end to end: a fixed number of /track requests through
 * serve and a worker into ClickHouse, timed until every row is visible.
 */
import type { ChildProcess } from 'node:child_process';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openClickHouse, queryRows } from '../clickhouse/client.js';
import { EventLensError } from '../errors.js';
import { freePort, startRedisServer } from '../ops/redis-server.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/event-lens.js');
const ORIGIN = 'https://bench.example';
const CLIENT = 'bench-browser-client';

export interface HttpRun {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

export interface HttpBenchResult {
  connections: number;
  durationS: number;
  noop: HttpRun;
  track: HttpRun & { eventsToQueuePerSecond: number; meanEventsPerJob: number };
  ratios: { trackVsNoop: number };
  endToEnd: { requests: number; seconds: number; eventsPerSecond: number; rows: number };
  /** With `bench http --profile`: the CPU profile of the serve process under the no-op and /track rounds (written when it exits). */
  profile?: string;
}

type Autocannon = typeof import('autocannon');

async function loadAutocannon(): Promise<Autocannon> {
  try {
    return (await import('autocannon')).default;
  } catch (err) {
    throw new EventLensError('BENCH_MISSING', 'bench http needs the optional dependency autocannon: run `npm install autocannon`', { cause: err });
  }
}

const UAS = Array.from({ length: 1_000 }, (_, i) => `Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.${i}.0 Safari/537.36`);

function trackBody(i: number): string {
  return JSON.stringify({ type: 'track', payload: { name: 'screen_view', properties: { __path: `${ORIGIN}/page/${i % 50}?utm_source=bench`, __referrer: 'https://www.google.com/', __title: 'Bench' } } });
}

function start(args: string[], env: Record<string, string>, nodeArgs: readonly string[] = []): { child: ChildProcess; exited: Promise<unknown> } {
  const child = spawn(process.execPath, [...nodeArgs, BIN, ...args], { env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'error', ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return { child, exited: new Promise((resolve) => child.once('exit', resolve)) };
}

async function waitOk(url: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await sleep(100);
  }
  throw new Error(`${url} did not answer within ${timeoutMs} ms`);
}

async function acceptedEvents(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(/^event_lens_intake_events_total\{outcome="accepted"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

async function batches(url: string): Promise<{ count: number; sum: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return { count: Number(/^event_lens_intake_batch_events_count (\d+)/m.exec(text)?.[1] ?? 0), sum: Number(/^event_lens_intake_batch_events_sum (\d+)/m.exec(text)?.[1] ?? 0) };
}

export async function benchHttp(options: { connections: number; durationS: number; endToEndRequests: number; progress?: (label: string) => void; profileDir?: string }): Promise<HttpBenchResult> {
  const autocannon = await loadAutocannon();
  const redis = await startRedisServer();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-bench-http-'));
  const projects = path.join(dir, 'projects.json');
  writeFileSync(projects, JSON.stringify([{ projectId: 'bench', clientId: CLIENT, origins: [ORIGIN] }]));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = {
    REDIS_URL: redis.url,
    EVENT_LENS_PROJECTS: projects,
    EVENT_LENS_DATA_DIR: path.join(dir, 'data'),
    SESSION_TIMEOUT_MS: '2000',
    GRACE_MS: '500',
    BACKLOG_HIGH_WATERMARK: '100000000',
    BACKLOG_LOW_WATERMARK: '1000000',
  };
  const profileArgs = options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, '--cpu-prof-name=serve-http.cpuprofile'] : [];
  const serve = start(['serve', '--port', String(port), '--host', '127.0.0.1', '--bench-routes'], env, profileArgs);
  const procs = [serve];
  try {
    await waitOk(`${url}/readyz`);
    const headers = { 'content-type': 'application/json', 'openpanel-client-id': CLIENT, origin: ORIGIN };
    let seq = 0;
    /** Each request: the next page of the next visitor (1 000 user agents in turn). */
    const nextTrack = <R extends object>(req: R): R => {
      seq += 1;
      return { ...req, body: trackBody(seq), headers: { ...headers, 'user-agent': UAS[seq % UAS.length] as string } };
    };
    const run = async (route: 'noop' | 'track', durationS: number): Promise<HttpRun> => {
      const result = await autocannon({
        url: `${url}${route === 'noop' ? '/bench/noop' : '/track'}`,
        method: 'POST',
        connections: options.connections,
        duration: durationS,
        headers,
        requests: [{ setupRequest: nextTrack }],
      });
      return { requestsPerSecond: result.requests.average, p50Ms: result.latency.p50, p99Ms: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
    };
    options.progress?.('warm-up');
    await run('track', 2);
    const noops: HttpRun[] = [];
    const tracks: HttpRun[] = [];
    let events = 0;
    let trackSeconds = 0;
    const batchesBefore = await batches(url);
    for (let round = 0; round < 2; round += 1) {
      options.progress?.(`noop round ${round + 1}`);
      noops.push(await run('noop', options.durationS));
      options.progress?.(`track round ${round + 1}`);
      const before = await acceptedEvents(url);
      const t0 = performance.now();
      tracks.push(await run('track', options.durationS));
      trackSeconds += (performance.now() - t0) / 1000;
      events += (await acceptedEvents(url)) - before;
    }
    const batchesAfter = await batches(url);
    const mean = (runs: HttpRun[], k: keyof HttpRun): number => runs.reduce((n, r) => n + r[k], 0) / runs.length;
    const summary = (runs: HttpRun[]): HttpRun => ({
      requestsPerSecond: Math.round(mean(runs, 'requestsPerSecond')),
      p50Ms: mean(runs, 'p50Ms'),
      p99Ms: mean(runs, 'p99Ms'),
      non2xx: runs.reduce((n, r) => n + r.non2xx, 0),
      errors: runs.reduce((n, r) => n + r.errors, 0),
    });
    const noop = summary(noops);
    if (options.profileDir) {
      // the profile is written when serve exits: stop it now that its rounds are done
      serve.child.kill('SIGTERM');
      await Promise.race([serve.exited, sleep(15_000)]);
    }
    const track = {
      ...summary(tracks),
      eventsToQueuePerSecond: Math.round(events / trackSeconds),
      meanEventsPerJob: Number(((batchesAfter.sum - batchesBefore.sum) / Math.max(1, batchesAfter.count - batchesBefore.count)).toFixed(1)),
    };

    // end to end: a fresh queue and database for a fixed number of requests
    options.progress?.('end to end');
    const e2eEnv = { ...env, QUEUE_NAME: 'bench-e2e', BUFFER_KEY_PREFIX: 'bench-e2e', CLICKHOUSE_DATABASE: 'bench_e2e' };
    const e2ePort = await freePort();
    const e2eUrl = `http://127.0.0.1:${e2ePort}`;
    const worker = start(['worker', '--role', 'all'], { ...e2eEnv, METRICS_PORT: '0', SWEEP_INTERVAL_MS: '100' });
    const serve2 = start(['serve', '--port', String(e2ePort), '--host', '127.0.0.1'], e2eEnv);
    procs.push(worker, serve2);
    await waitOk(`${e2eUrl}/readyz`);
    const endpoint = path.join(dir, 'data', 'endpoint.json');
    for (let i = 0; i < 600 && !existsSync(endpoint); i += 1) await sleep(100);
    const ch = await openClickHouse({ clickhouseUrl: undefined, dataDir: path.join(dir, 'data'), clickhouseDatabase: 'bench_e2e' });
    try {
      const t0 = performance.now();
      const load = await autocannon({
        url: `${e2eUrl}/track`,
        method: 'POST',
        connections: options.connections,
        amount: options.endToEndRequests,
        headers,
        requests: [{ setupRequest: nextTrack }],
      });
      const expected = load['2xx'];
      let rows = 0;
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        rows = Number((await queryRows<{ n: string }>(ch, 'SELECT count() AS n FROM bench_e2e.events').catch(() => [{ n: '0' }]))[0]?.n ?? 0);
        if (rows >= expected) break;
        await sleep(200);
      }
      const seconds = (performance.now() - t0) / 1000;
      return {
        connections: options.connections,
        durationS: options.durationS,
        noop,
        track,
        ratios: { trackVsNoop: Number((track.requestsPerSecond / noop.requestsPerSecond).toFixed(2)) },
        endToEnd: { requests: expected, seconds: Number(seconds.toFixed(1)), eventsPerSecond: Math.round(rows / seconds), rows },
        ...(options.profileDir ? { profile: path.join(options.profileDir, 'serve-http.cpuprofile') } : {}),
      };
    } finally {
      await ch.close();
    }
  } finally {
    for (const p of procs) p.child.kill('SIGTERM');
    await Promise.all(procs.map((p) => Promise.race([p.exited, sleep(15_000)])));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
