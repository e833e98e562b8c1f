/**
 * The real `event-lens` command, run as a child process against a private
 * redis-server and an embedded ClickHouse directory of this test.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse } from '../../../src/clickhouse/client.ts';
import { testRedis, type TestRedis } from '../../helpers/services.ts';

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
    const a = await cli(['generate', '--sessions', '50', '--seed', '4']);
    const b = await cli(['generate', '--sessions', '50', '--seed', '4']);
    const c = await cli(['generate', '--sessions', '50', '--seed', '5']);
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

  it('has --help on every subcommand', async () => {
    for (const command of ['replay', 'generate', 'query', 'migrate', 'status', 'demo']) {
      const r = await cli([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: event-lens ${command}`);
    }
  });
});
