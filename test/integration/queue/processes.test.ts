/**
 * Real `event-lens worker` processes: two ingest replicas and one flush
 * process that owns the embedded ClickHouse directory (and serves it to the
 * others). One ingest replica is killed with SIGKILL mid-stream and started
 * again; every event must still be in ClickHouse exactly once. Rows are read
 * by a fourth process (`event-lens query`) through the owner's endpoint.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { loadConfig } from '../../../src/config.js';
import { generateEvents } from '../../../src/generate/model.js';
import { Producer } from '../../../src/queue/producer.js';
import { useServices } from '../../helpers/services.js';

const BIN = path.resolve(import.meta.dirname, '../../../bin/event-lens.js');
const services = useServices({ clickhouse: false });
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-procs-'));
const children = new Set<ChildProcess>();

afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
});

function env(): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '',
    REDIS_URL: services.server.url,
    EVENT_LENS_DATA_DIR: dataDir,
    BUFFER_KEY_PREFIX: services.server.prefix,
    QUEUE_NAME: 'procs',
    GRACE_MS: '500',
    SESSION_TIMEOUT_MS: '2000',
    WORKER_LOCK_MS: '2000',
    SWEEP_INTERVAL_MS: '100',
    FLUSH_INTERVAL_MS: '200',
    METRICS_PORT: '0',
    LOG_LEVEL: 'warn',
  };
}

function startWorker(role: string): ChildProcess {
  const child = spawn(process.execPath, [BIN, 'worker', '--role', role], { env: env(), stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr?.resume();
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

const exited = (child: ChildProcess): Promise<number | null> =>
  child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));

function query(sql: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'query', sql], { env: env() }, (error, stdout, stderr) => (error ? reject(new Error(stderr)) : resolve(stdout)));
  });
}

describe('worker processes', () => {
  it('loses and doubles nothing when an ingest worker is killed with SIGKILL mid-stream', async () => {
    const flush = startWorker('flush');
    let ingestA = startWorker('ingest');
    const config = { ...loadConfig(env()) };
    const producer = new Producer({ redisUrl: config.redisUrl, queueName: config.queueName });
    const { Queue } = await import('bullmq');
    const queue = new Queue(config.queueName, { connection: { url: config.redisUrl }, prefix: config.queuePrefix });
    const events = generateEvents({ sessions: 400, seed: 21 });
    const jobs = Math.ceil(events.length / 40);
    const enqueue = async (from: number, to: number): Promise<void> => {
      for (let j = from; j < to; j += 1) await producer.enqueueBatch(events.slice(j * 40, j * 40 + 40));
    };
    // until the kill, A is the only ingest worker: the kill must catch jobs it is processing
    await enqueue(0, Math.floor(jobs / 2));
    await expect.poll(async () => (await queue.getJobCounts('active')).active, { timeout: 30_000, interval: 5 }).toBeGreaterThan(0);
    ingestA.kill('SIGKILL');
    await exited(ingestA);
    const ingestB = startWorker('ingest');
    ingestA = startWorker('ingest');
    await enqueue(Math.floor(jobs / 2), jobs);
    await producer.close();

    // wait until the queue is empty (the killed worker's jobs are retried once their lock expires)
    // and every session was finalised and flushed
    const buffer = new SessionBuffer(services.redis, config);
    await expect
      .poll(
        async () => {
          const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized');
          const backlog = await buffer.backlog();
          return Object.values(counts).reduce((a, b) => a + b, 0) + backlog.reduce((n, b) => n + b.ready + b.inBatch + b.heldSessions, 0);
        },
        { timeout: 60_000, interval: 250 },
      )
      .toBe(0);
    await queue.close();

    const counts = JSON.parse(await query('SELECT count() AS rows, uniqExact(id) AS ids FROM event_lens.events')) as { rows: number | string; ids: number | string };
    expect(Number(counts.ids)).toBe(events.length);
    expect(Number(counts.rows)).toBe(events.length);

    for (const child of [flush, ingestA, ingestB]) child.kill('SIGTERM');
    expect(await Promise.all([flush, ingestA, ingestB].map(exited))).toEqual([0, 0, 0]);
  });
});
