/**
 * The producer and the CLI against a Redis that is gone: every call ends
 * within the stated time with an error the caller can act on, and the outage
 * is reported once.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../../src/ops/redis-server.js';
import { EnqueueError, Producer } from '../../../src/queue/producer.js';
import { BIN } from '../../helpers/processes.js';
import { testRedis } from '../../helpers/services.js';

const event = { projectId: 'p', name: 'click', createdAt: 1_790_000_000_000 };

describe('Producer against a dead Redis', () => {
  it('rejects every enqueue within enqueueTimeoutMs with EnqueueError, and reports the outage once', async () => {
    const port = await freePort(); // nothing listens there
    const reports: string[] = [];
    const producer = new Producer({ redisUrl: `redis://127.0.0.1:${port}`, enqueueTimeoutMs: 500, onError: (m) => reports.push(m) });
    try {
      const started = Date.now();
      const results = await Promise.allSettled([producer.enqueueEvent(event), producer.enqueueBatch([event, event]), producer.enqueueEvent(event)]);
      expect(Date.now() - started).toBeLessThan(1_500);
      for (const r of results) {
        expect(r.status).toBe('rejected');
        const err = (r as PromiseRejectedResult).reason as EnqueueError;
        expect(err).toBeInstanceOf(EnqueueError);
        expect(err.retryable).toBe(true);
        expect(['ENQUEUE_TIMEOUT', 'ENQUEUE_REDIS_UNAVAILABLE']).toContain(err.code);
      }
      await new Promise((r) => setTimeout(r, 1_000)); // ioredis keeps reconnecting meanwhile
      expect(reports).toHaveLength(1);
      expect(reports[0]).toContain(`Redis at redis://127.0.0.1:${port}`);
    } finally {
      const closing = Date.now();
      await producer.close();
      expect(Date.now() - closing).toBeLessThan(1_500);
    }
  });

  it('recovers when Redis returns, and re-sent events keep their ids', async () => {
    const redis = await testRedis();
    const server = redis.server;
    if (!server) return;
    const producer = new Producer({ redisUrl: redis.url, queueName: `${redis.prefix}-q`, enqueueTimeoutMs: 500, onError: () => {} });
    try {
      await producer.enqueueEvent(event);
      await server.kill('SIGKILL');
      const withId = { ...event, id: 'stable-1' };
      await expect(producer.enqueueEvent(withId)).rejects.toBeInstanceOf(EnqueueError);
      await server.restart();
      let id: string | undefined;
      for (let i = 0; i < 40 && id === undefined; i += 1) {
        id = await producer.enqueueEvent(withId).catch(() => undefined);
        if (id === undefined) await new Promise((r) => setTimeout(r, 100));
      }
      expect(id).toBe('stable-1');
    } finally {
      await producer.close();
      await redis.stop();
    }
  });
});

describe('CLI commands against a dead Redis', () => {
  it.each([['replay', '--enqueue'], ['status']])('%s %s prints one line and exits 1 within seconds', async (...args) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-dead-'));
    const file = path.join(dir, 's.ndjson');
    writeFileSync(file, `${JSON.stringify(event)}\n`);
    const port = await freePort();
    const argv = args[0] === 'replay' ? ['replay', file, ...args.slice(1)] : args;
    const started = Date.now();
    const r = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [BIN, ...argv], { env: { PATH: process.env.PATH ?? '', REDIS_URL: `redis://127.0.0.1:${port}`, ENQUEUE_TIMEOUT_MS: '1000', EVENT_LENS_DATA_DIR: dir } }, (error, _stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stderr }),
      ),
    );
    rmSync(dir, { recursive: true, force: true });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(8_000);
    const lines = r.stderr.trim().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^event-lens: .*Redis.*127\.0\.0\.1:\d+/);
  }, 20_000);
});
