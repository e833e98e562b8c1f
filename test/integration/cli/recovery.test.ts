/**
 * The operator's recovery commands, as child processes against a real Redis
 * and real ClickHouse: `dead-letters list|show|redrive` after the cause of a
 * rejection is fixed (a table constraint here), and `failed list|retry`.
 */
import { execFile } from 'node:child_process';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { Flusher } from '../../../src/flush/flusher.js';
import { ev, settings, T0 } from '../../helpers/buffer.js';
import { BIN } from '../../helpers/processes.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });

const cli = (args: string[], prefix: string, queue = 'unused') =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { PATH: process.env.PATH ?? '', REDIS_URL: services.server.url, BUFFER_KEY_PREFIX: prefix, BUFFER_SHARDS: '1', QUEUE_NAME: queue, LOG_LEVEL: 'warn' } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    ),
  );

describe('recovery commands', () => {
  it('dead-letters: lists and shows a rejected row, re-drives it once the cause is fixed, and never inserts it twice', async () => {
    const prefix = `${services.server.prefix}dl`;
    const db = services.clickhouse.database;
    const buffer = new SessionBuffer(services.redis, settings(prefix, { bufferShards: 1 }));
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { owner: 'f', leaseMs: 5_000, flushMaxRows: 100, flushMaxBytes: 1 << 20, flushIntervalMs: 0 });
    const count = async (id: string) => Number((await queryRows<{ n: string }>(services.clickhouse.ch, `SELECT count() AS n FROM ${db}.events WHERE id = {id:String}`, { id }))[0]?.n);
    await services.clickhouse.ch.client.command({ query: `ALTER TABLE ${db}.events ADD CONSTRAINT no_poison CHECK path != '/page/poison'` });
    try {
      const ids = ['g1', 'g2', 'g3', 'poison', 'g4', 'g5'];
      await buffer.ingest(ids.map((id, i) => ev({ id, createdAtMs: T0 + i, kind: 'o', sessionId: 'rs' })), T0);
      expect((await flusher.tick(true)).rows).toBe(5);
    } finally {
      await services.clickhouse.ch.client.command({ query: `ALTER TABLE ${db}.events DROP CONSTRAINT no_poison` });
    }
    const list = await cli(['dead-letters', 'list', '--json'], prefix);
    expect(list.code, list.stderr).toBe(0);
    const entries = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { ref: string; error: string });
    expect(entries).toEqual([{ ref: '0/events/poison', shard: 0, stream: 'events', id: 'poison', error: expect.stringContaining('VIOLATED_CONSTRAINT') }]);
    const show = await cli(['dead-letters', 'show', 'poison'], prefix);
    expect(JSON.parse(show.stdout)).toMatchObject({ ref: '0/events/poison', row: { id: 'poison', path: '/page/poison' } });
    expect((await cli(['status'], prefix)).stdout).toContain('dead letters: 1');

    const redrive = await cli(['dead-letters', 'redrive', '0/events/poison'], prefix);
    expect(redrive.stdout.trim()).toMatch(/^redriven=1 of 1/);
    expect((await cli(['dead-letters', 'redrive', '--all'], prefix)).stdout.trim()).toMatch(/^redriven=0 of 0/);
    const again = await cli(['dead-letters', 'redrive', 'poison'], prefix);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no dead letter "poison"');
    expect((await flusher.tick(true)).rows).toBe(1);
    expect((await flusher.tick(true)).rows).toBe(0);
    expect(await count('poison')).toBe(1);
    expect(await count('g1')).toBe(1);
    expect((await cli(['dead-letters', 'list'], prefix)).stdout.trim()).toBe('no dead letters');
  });

  it('failed: lists failed jobs with their reason and retries one by id, then all', async () => {
    const name = `${services.server.prefix}fq`;
    const queue = new Queue(name, { connection: { url: services.server.url } });
    let failing = true;
    const worker = new Worker(
      name,
      async (job) => {
        if (failing) throw new UnrecoverableError(`createdAt: must be an ISO-8601 string (job ${job.id})`);
        return 'ok';
      },
      { connection: { url: services.server.url, maxRetriesPerRequest: null } },
    );
    try {
      await queue.addBulk([1, 2, 3].map((i) => ({ name: 'event', data: { i }, opts: { jobId: `bad-${i}` } })));
      while ((await queue.getFailedCount()) < 3) await new Promise((r) => setTimeout(r, 50));
      const list = await cli(['failed', 'list', '--json'], 'x', name);
      expect(list.code, list.stderr).toBe(0);
      const rows = list.stdout.trim().split('\n').map((l) => JSON.parse(l) as { id: string; reason: string; attempts: number });
      expect(rows.map((r) => r.id).sort()).toEqual(['bad-1', 'bad-2', 'bad-3']);
      expect(rows[0]?.reason).toContain('createdAt: must be an ISO-8601 string');
      failing = false;
      expect((await cli(['failed', 'retry', 'bad-2'], 'x', name)).stdout.trim()).toBe('retried=1');
      while ((await queue.getFailedCount()) > 2) await new Promise((r) => setTimeout(r, 50));
      expect((await cli(['failed', 'retry', '--all'], 'x', name)).stdout.trim()).toBe('retried=2');
      while ((await queue.getCompletedCount()) < 3) await new Promise((r) => setTimeout(r, 50));
      expect((await cli(['failed', 'list'], 'x', name)).stdout.trim()).toBe('no failed jobs');
      expect((await cli(['failed', 'retry', 'nope'], 'x', name)).stderr).toContain('no failed job "nope"');
    } finally {
      await worker.close();
      await queue.close();
    }
  });
});
