/**
 * The package as an ingestion-API team gets it: `npm pack`, then fresh
 * projects outside the repository that install the tarball from the npm
 * registry's dependencies.
 *  - plain Node (`.mjs`) imports the producer and enqueues against a test Redis;
 *  - a TypeScript consumer type-checks with `tsc --strict --module nodenext`
 *    (no skipLibCheck, so the package's declarations are checked too),
 *    and a misspelt field or a wrong type fails to compile;
 *  - `npm i --omit=optional` (no embedded engine) gives a working producer and
 *    a CLI that works against a ClickHouse server URL, and that says in one line
 *    how to fix the embedded default.
 * The ClickHouse "server" here is the embedded engine of this test process,
 * served on loopback through the HTTP endpoint that workers use.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, type ClickHouse } from '../../../src/clickhouse/client.js';
import { endpointUrl, readEndpoint } from '../../../src/clickhouse/embedded-endpoint.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../../..');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');

let redis: TestRedis;
let work: string;
let tarball: string;

/** Directory size in MiB (du, as an operator would measure it). */
async function sizeMiB(dir: string): Promise<number> {
  const { stdout } = await run('du', ['-sk', dir]);
  return Math.round(Number(stdout.split('\t')[0]) / 1024);
}

/** A fresh project with the tarball installed (npm's cache serves what the repository's npm ci fetched). */
async function project(name: string, installArgs: string[]): Promise<string> {
  const dir = path.join(work, name);
  mkdirSync(dir);
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  await run('npm', ['install', tarball, '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...installArgs], { cwd: dir, timeout: 240_000 });
  return dir;
}

const node = (cwd: string, args: string[], env: Record<string, string> = {}) =>
  run(process.execPath, args, { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: Number(e.code ?? 1), stdout: e.stdout ?? '', stderr: e.stderr ?? '' }),
  );

const PRODUCER_MJS = `
import { Producer, EnqueueError } from 'event-lens';
const producer = new Producer({ redisUrl: process.env.REDIS_URL, queueName: process.env.QUEUE });
const id = await producer.enqueueEvent({ projectId: 'shop', name: 'screen_view', sessionId: 's1', createdAt: new Date().toISOString(), path: '/' });
const ids = await producer.enqueueBatch([{ projectId: 'shop', name: 'click', createdAt: Date.now() }]);
await producer.close();
console.log(JSON.stringify({ id, ids, enqueueError: typeof EnqueueError }));
`;

const CONSUMER_TS = `
import { Producer, EnqueueError, type IncomingEvent, type JobResult } from 'event-lens';
const producer = new Producer({ redisUrl: 'redis://127.0.0.1:6379', enqueueTimeoutMs: 2_000 });
const event: IncomingEvent = { projectId: 'shop', name: 'screen_view', createdAt: Date.now(), properties: { plan: 'pro' } };
export async function send(): Promise<string> {
  try {
    return await producer.enqueueEvent(event);
  } catch (err) {
    if (err instanceof EnqueueError && err.retryable) return err.code;
    throw err;
  }
}
export const reply: JobResult = { accepted: 1, duplicates: 0, late: 0, rejected: [] };
`;

const TSCONFIG = JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] }, files: ['consumer.ts'] });

beforeAll(async () => {
  redis = await testRedis();
  work = mkdtempSync(path.join(os.tmpdir(), 'event-lens-pack-'));
  await run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: ROOT, timeout: 120_000 });
  const file = readdirSync(work).find((f) => f.endsWith('.tgz'));
  if (!file) throw new Error('npm pack wrote no tarball');
  tarball = path.join(work, file);
}, 180_000);

afterAll(async () => {
  await redis?.stop();
  rmSync(work, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('is importable from plain Node, enqueues, and type-checks a strict TypeScript consumer', async () => {
    // a TypeScript project for Node has Node's types, as any does
    const dir = await project('full', ['@types/node@20']);
    writeFileSync(path.join(dir, 'produce.mjs'), PRODUCER_MJS);
    const queueName = 'packed';
    const r = await node(dir, ['produce.mjs'], { REDIS_URL: redis.url, QUEUE: queueName });
    expect(r.stderr).toBe('');
    const printed = JSON.parse(r.stdout) as { id: string; ids: string[]; enqueueError: string };
    expect(printed.id).toMatch(/^[0-9A-Z]{26}$/);
    expect(printed.enqueueError).toBe('function');
    const queue = new Queue(queueName, { connection: { url: redis.url } });
    try {
      expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 2 });
    } finally {
      await queue.close();
    }

    writeFileSync(path.join(dir, 'tsconfig.json'), TSCONFIG);
    writeFileSync(path.join(dir, 'consumer.ts'), CONSUMER_TS);
    const ok = await node(dir, [TSC, '-p', 'tsconfig.json']);
    expect(ok.stdout + ok.stderr).toBe('');
    expect(ok.code).toBe(0);

    writeFileSync(path.join(dir, 'consumer.ts'), `${CONSUMER_TS}\nexport const typo: IncomingEvent = { projectId: 123, nmae: 'typo', createdAt: 1 };\n`);
    const bad = await node(dir, [TSC, '-p', 'tsconfig.json']);
    expect(bad.code).not.toBe(0);
    expect(bad.stdout).toMatch(/consumer\.ts\(\d+,\d+\): error TS2322: Type 'number' is not assignable to type 'string'|'nmae' does not exist/);
  }, 300_000);

  it('installs without the embedded engine, enqueues, and runs against a ClickHouse server URL', async () => {
    const dir = await project('lean', ['--omit=optional']);
    const mib = await sizeMiB(path.join(dir, 'node_modules'));
    console.info(`package: --omit=optional install is ${mib} MiB of node_modules`);
    expect(mib).toBeLessThan(100);
    writeFileSync(path.join(dir, 'produce.mjs'), PRODUCER_MJS);
    const p = await node(dir, ['produce.mjs'], { REDIS_URL: redis.url, QUEUE: 'lean' });
    expect(p.code).toBe(0);

    const bin = path.join(dir, 'node_modules/event-lens/bin/event-lens.js');
    const embedded = await node(dir, [bin, 'query', 'SELECT 1'], { EVENT_LENS_DATA_DIR: path.join(dir, 'data') });
    expect(embedded.code).toBe(1);
    expect(embedded.stderr.trim().split('\n')).toEqual([
      'event-lens: the embedded ClickHouse engine (npm package chdb) is not installed: set CLICKHOUSE_URL to a ClickHouse server, or run `npm install chdb`',
    ]);

    const dataDir = path.join(work, 'server');
    let server: ClickHouse | undefined;
    try {
      server = await openClickHouse({ clickhouseUrl: undefined, dataDir, clickhouseDatabase: 'lean' }, { serve: true });
      const endpoint = readEndpoint(dataDir);
      if (!endpoint) throw new Error('no endpoint');
      const env = { CLICKHOUSE_URL: endpointUrl(endpoint), CLICKHOUSE_DATABASE: 'lean' };
      const m = await node(dir, [bin, 'migrate'], env);
      expect(m.stderr).toBe('');
      expect(m.code).toBe(0);
      const tables = await queryRows<{ name: string }>(server, "SELECT name FROM system.tables WHERE database = 'lean' AND name = 'events'");
      expect(tables).toEqual([{ name: 'events' }]);
    } finally {
      await server?.close();
    }
  }, 300_000);
});
