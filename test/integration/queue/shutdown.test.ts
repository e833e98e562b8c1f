/**
 * SIGTERM keeps its deadline: a real worker process whose Redis is gone exits
 * within SHUTDOWN_TIMEOUT_MS plus the documented margin, with status 1 (work
 * was left behind in Redis), instead of running on; with Redis up it exits 0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SHUTDOWN_MARGIN_MS } from '../../../src/cli/worker.js';
import { startProc, waitFor } from '../../helpers/processes.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const DEADLINE_MS = 3_000;
let redis: TestRedis;
let dir: string;

beforeAll(async () => {
  redis = await testRedis();
  dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-shutdown-'));
});
afterAll(async () => {
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const worker = (sub: string) =>
  startProc(['worker', '--role', 'all'], {
    REDIS_URL: redis.url,
    BUFFER_KEY_PREFIX: redis.prefix,
    QUEUE_NAME: `${redis.prefix}-q`,
    EVENT_LENS_DATA_DIR: path.join(dir, sub),
    METRICS_PORT: '0',
    SHUTDOWN_TIMEOUT_MS: String(DEADLINE_MS),
    LOG_LEVEL: 'info',
  });

describe('worker shutdown', () => {
  it('exits 0 promptly on SIGTERM when everything answers', async () => {
    const w = worker('a');
    await waitFor('the worker to start', async () => (w.output().includes('worker started') ? true : undefined), 60_000);
    const started = Date.now();
    expect(await w.stop('SIGTERM'), w.output()).toBe(0);
    expect(Date.now() - started).toBeLessThan(DEADLINE_MS);
  }, 90_000);

  it('exits 1 within SHUTDOWN_TIMEOUT_MS + margin when Redis became unreachable', async () => {
    const server = redis.server;
    if (!server) return;
    const w = worker('b');
    await waitFor('the worker to start', async () => (w.output().includes('worker started') ? true : undefined), 60_000);
    await server.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    const started = Date.now();
    const code = await w.stop('SIGTERM');
    const took = Date.now() - started;
    await server.restart();
    expect(took, w.output()).toBeLessThan(DEADLINE_MS + SHUTDOWN_MARGIN_MS + 1_000);
    expect(code, w.output()).toBe(1);
    expect(w.output()).toMatch(/shutdown deadline passed|did not finish by the deadline/);
  }, 90_000);
});
