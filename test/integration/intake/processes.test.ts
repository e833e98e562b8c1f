/**
 * `event-lens serve` as operators run it: several stateless replicas behind
 * a load balancer, and SIGTERM during traffic.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../src/ops/redis-server.js';
import { startProc, waitReady, type Proc } from '../../helpers/processes.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const ORIGIN = 'https://shop.example';
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
let redis: TestRedis;
let dir: string;
const procs: Proc[] = [];

const env = (extra: Record<string, string> = {}): Record<string, string> => ({
  REDIS_URL: redis.url,
  BUFFER_KEY_PREFIX: redis.prefix,
  QUEUE_NAME: `${redis.prefix}-q`,
  EVENT_LENS_PROJECTS: path.join(dir, 'projects.json'),
  ...extra,
});

async function serve(extra: Record<string, string> = {}): Promise<{ proc: Proc; url: string }> {
  const port = await freePort();
  const proc = startProc(['serve', '--port', String(port), '--host', '127.0.0.1'], env(extra));
  procs.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/readyz`);
  return { proc, url };
}

const track = (url: string, path: string, ua = CHROME) =>
  fetch(`${url}/track`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'openpanel-client-id': 'browser-client', origin: ORIGIN, 'user-agent': ua },
    body: JSON.stringify({ type: 'track', payload: { name: 'screen_view', properties: { __path: `${ORIGIN}${path}` } } }),
  });

async function queuedEvents(): Promise<number> {
  const queue = new Queue(`${redis.prefix}-q`, { connection: { url: redis.url } });
  try {
    const jobs = await queue.getJobs(['waiting']);
    return jobs.reduce((n, j) => n + (j.data as { events: unknown[] }).events.length, 0);
  } finally {
    await queue.close();
  }
}

beforeAll(async () => {
  redis = await testRedis();
  dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-serve-'));
  writeFileSync(path.join(dir, 'projects.json'), JSON.stringify([{ projectId: 'shop', clientId: 'browser-client', origins: [ORIGIN] }]));
});

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop('SIGKILL')));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('event-lens serve processes', () => {
  it('two replicas receiving one visitor’s requests at the same moment agree on one session', async () => {
    const [a, b] = await Promise.all([serve(), serve()]);
    for (let round = 0; round < 5; round += 1) {
      const ua = `${CHROME} round/${round}`; // a new visitor each round: every round starts a session concurrently
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => track(i % 2 === 0 ? a.url : b.url, `/p${i}`, ua)));
      expect(replies.map((r) => r.status)).toEqual(Array(20).fill(200));
      const ids = (await Promise.all(replies.map((r) => r.json()))) as { deviceId: string; sessionId: string }[];
      expect(new Set(ids.map((x) => x.sessionId)).size).toBe(1);
      expect(new Set(ids.map((x) => x.deviceId)).size).toBe(1);
    }
    await Promise.all([a.proc.stop(), b.proc.stop()]);
  }, 60_000);

  it('on SIGTERM finishes in-flight requests, sends what it coalesced, and exits 0; every 200 is in the queue', async () => {
    const before = await queuedEvents();
    // a long coalescing window, so events are held in the process when the signal comes
    const { proc, url } = await serve({ INTAKE_BATCH_WINDOW_MS: '3000', INTAKE_BATCH_MAX_EVENTS: '1000' });
    const inFlight = Array.from({ length: 100 }, (_, i) => track(url, `/t${i}`).then((r) => r.status, () => 'refused'));
    await new Promise((r) => setTimeout(r, 500)); // all 100 are in the process; those that came while a batch was in flight wait for the next
    const started = Date.now();
    proc.child.kill('SIGTERM');
    const statuses = await Promise.all(inFlight);
    const code = await proc.exited;
    expect(code, proc.output()).toBe(0);
    // answered at the signal, not when the window would have ended
    expect(Date.now() - started).toBeLessThan(2_500);
    const ok = statuses.filter((s) => s === 200).length;
    expect(ok).toBe(100);
    expect(await queuedEvents()).toBe(before + ok);
    expect(proc.output()).not.toMatch(/"level":50/); // no error lines
  }, 60_000);
});
