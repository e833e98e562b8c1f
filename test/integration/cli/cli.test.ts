/**
 * The real `event-lens` command, run as a child process against a private
 * redis-server and an embedded ClickHouse directory of this test.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../../src/clickhouse/client.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const BIN = path.resolve(import.meta.dirname, '../../../bin/event-lens.js');
let redis: TestRedis;
let dataDir: string;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, EVENT_LENS_DATA_DIR: dataDir, BUFFER_KEY_PREFIX: redis.prefix, LOG_LEVEL: 'warn', ...env },
        maxBuffer: 64 << 20,
      },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  redis = await testRedis();
  dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-cli-'));
});
afterAll(async () => {
  await redis.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('event-lens CLI', () => {
  it('generate writes the same stream for the same seed and another for another seed', async () => {
    const fixed = ['--start', '2026-10-01T00:00:00Z'];
    const a = await cli(['generate', '--sessions', '50', '--seed', '4', ...fixed]);
    const b = await cli(['generate', '--sessions', '50', '--seed', '4', ...fixed]);
    const c = await cli(['generate', '--sessions', '50', '--seed', '5', ...fixed]);
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    expect(a.code).toBe(0);
    expect(a.stdout.split('\n').length).toBeGreaterThan(100);
    expect(sha(a.stdout)).toBe(sha(b.stdout));
    expect(sha(a.stdout)).not.toBe(sha(c.stdout));
  });

  it('replay --drain writes every valid line, reports bad lines by number, and prints a one-line summary', async () => {
    const stream = (await cli(['generate', '--sessions', '200', '--seed', '9', '--late-fraction', '0'])).stdout.trim().split('\n');
    const lines = [...stream.slice(0, 10), '{"projectId": "p", "name": ', '{"projectId":"p","name":"x","createdAt":"yesterday"}', ...stream.slice(10)];
    const file = path.join(dataDir, 'stream.ndjson');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = await cli(['replay', file, '--drain']);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain('line 11: event: must be valid JSON');
    expect(r.stderr).toContain('line 12: createdAt: must be an ISO-8601 string with a time zone');
    expect(r.stdout).toMatch(new RegExp(`^replay: read=${lines.length} accepted=${stream.length} rejected=2 duplicates=0 late=0 rows_written=${stream.length} `));

    const q = await cli(['query', 'SELECT count() AS n, uniqExact(id) AS ids FROM event_lens.events']);
    expect(q.code).toBe(0);
    const counts = JSON.parse(q.stdout) as { n: number | string; ids: number | string };
    expect([Number(counts.n), Number(counts.ids)]).toEqual([stream.length, stream.length]);
  });

  it('status --session shows the held events of a session that is still open, and status counts it', async () => {
    const file = path.join(dataDir, 'open.ndjson');
    const at = (s: number) => new Date(Date.UTC(2026, 9, 2, 9, 0, s)).toISOString();
    writeFileSync(
      file,
      [
        { id: 'v1', projectId: 'shop', sessionId: 'live-1', name: 'screen_view', createdAt: at(0), path: '/a' },
        { id: 'v2', projectId: 'shop', sessionId: 'live-1', name: 'screen_view', createdAt: at(4), path: '/b' },
      ]
        .map((e) => JSON.stringify(e))
        .join('\n'),
    );
    expect((await cli(['replay', file])).code).toBe(0);
    const r = await cli(['status', '--session', 'shop/live-1']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({
      projectId: 'shop',
      sessionId: 'live-1',
      state: 'open',
      heldRows: 2,
      events: [
        { id: 'v1', kind: 'screen_view', state: 'settled', emitAt: at(14), path: '/a' },
        { id: 'v2', kind: 'screen_view', state: 'unsettled', path: '/b' },
      ],
    });
    const all = JSON.parse((await cli(['status', '--json'])).stdout) as { shards: { heldSessions: number }[] };
    expect(all.shards.reduce((n, s) => n + s.heldSessions, 0)).toBe(1);
  });

  it('query takes a FORMAT clause of its own, as ClickHouse clients do, and prints that format', async () => {
    const json = await cli(['query', 'SELECT 1 AS n, \'a\' AS s FORMAT JSONEachRow']);
    expect(json.code).toBe(0);
    expect(json.stdout.trim()).toBe('{"n":1,"s":"a"}');
    const tsv = await cli(['query', 'SELECT number FROM numbers(3) format TabSeparated;']);
    expect(tsv.stdout).toBe('0\n1\n2\n');
    expect((await cli(['query', 'SELECT 2 AS n'])).stdout.trim()).toBe('{"n":2}');
  });

  it('explains which process owns the embedded data directory instead of failing obscurely', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-owned-'));
    const ch = await openClickHouse({ clickhouseUrl: undefined, dataDir: dir, clickhouseDatabase: 'x' });
    try {
      const r = await cli(['query', 'SELECT 1'], { EVENT_LENS_DATA_DIR: dir });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`is in use by process ${process.pid}`);
    } finally {
      await ch.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a bad configuration naming the variable, the value and the expected form', async () => {
    const r = await cli(['status'], { BUFFER_SHARDS: 'lots' });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('BUFFER_SHARDS="lots": expected an integer from 1 to 1024');
  });

  it('generate places its sessions in the hours before now by default, and at --start when given', async () => {
    const times = (out: string) => out.trim().split('\n').map((l) => Date.parse((JSON.parse(l) as { createdAt: string }).createdAt));
    const recent = times((await cli(['generate', '--sessions', '30'])).stdout);
    const hourStart = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    expect(Math.max(...recent)).toBeLessThanOrEqual(hourStart);
    expect(Math.min(...recent)).toBeGreaterThan(Date.now() - 6 * 3_600_000);
    const fixed = times((await cli(['generate', '--sessions', '30', '--start', '2026-10-01'])).stdout);
    expect(Math.min(...fixed)).toBeGreaterThanOrEqual(Date.UTC(2026, 9, 1));
    expect(Math.max(...fixed)).toBeLessThan(Date.UTC(2026, 9, 1, 6));
  });

  it('says which range an empty report read', async () => {
    const r = await cli(['report', 'pages', '--project', 'nobody', '--from', '2026-01-01', '--to', '2026-01-31']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe('(no rows)');
    expect(r.stderr).toContain('no rows for project "nobody" from 2026-01-01 to 2026-01-31');
  });

  it('says what each status counter counts', async () => {
    const file = path.join(dataDir, 'counted.ndjson');
    writeFileSync(file, `${JSON.stringify({ id: 'c1', projectId: 'shop', sessionId: 'counted', name: 'screen_view', createdAt: '2026-10-03T09:00:00Z' })}\n`);
    expect((await cli(['replay', file, '--drain'])).code).toBe(0);
    const r = await cli(['status']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/flushed\s+\d+\s+rows ClickHouse confirmed: event rows and sessions rows together/);
    expect(r.stdout).toMatch(/accepted\s+\d+\s+events taken into the buffer/);
  });

  it('answers --version with the package version', async () => {
    const r = await cli(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(JSON.parse(readFileSync(path.resolve(import.meta.dirname, '../../../package.json'), 'utf8')).version);
  });

  it.each([
    ['worker', '--concurrency', 'abc'],
    ['worker', '--role', 'everything'],
    ['generate', '--sessions', '-3'],
    ['report', 'pages', '--project', 'p', '--limit', '1e99'],
    ['demo', '--sessions', 'ten'],
  ])('rejects %s %s %s naming the flag and the rule', async (...args) => {
    const r = await cli(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`option '${args.at(-2)}`);
    expect(r.stderr).toContain(`argument '${args.at(-1)}' is invalid. expected`);
  });

  it.each([
    ['query', 'SELECT number FROM numbers(300000)', '| head -c 10'],
    ['generate', '--sessions', '2000', '| head -1'],
    ['status', '| true'],
    ['migrate', '--dry-run', '| true'],
  ])('ends quietly with status 0 when its output pipe closes: %s', async (...parts) => {
    const reader = parts.pop() as string;
    const args = parts.map((a) => `'${a}'`).join(' ');
    const r = await new Promise<Run>((resolve) => {
      execFile(
        'bash',
        ['-c', `set -o pipefail; '${process.execPath}' '${BIN}' ${args} ${reader} > /dev/null`],
        { env: { PATH: process.env.PATH ?? '', REDIS_URL: redis.url, EVENT_LENS_DATA_DIR: dataDir, BUFFER_KEY_PREFIX: redis.prefix, LOG_LEVEL: 'warn' } },
        (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
      );
    });
    expect(r.stderr).not.toContain('EPIPE');
    expect(r.code).toBe(0);
  });

  it('has --help on every subcommand', async () => {
    for (const command of ['replay', 'generate', 'query', 'migrate', 'status', 'demo']) {
      const r = await cli([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: event-lens ${command}`);
    }
  });
});
