/**
 * Golden session streams (test/fixtures/*.ndjson with *.expected.json), one per
 * rule of DESIGN §2, replayed through the same path as `event-lens replay`
 * (validation, buffer, flusher) into real ClickHouse; the rows are read back
 * from the events table. Lines go one at a time, so sweeps run between
 * arrivals as in a live worker.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { Flusher } from '../../../src/flush/flusher.js';
import { replay } from '../../../src/replay/replay.js';
import { settings } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures');

interface Expected {
  about: string;
  rows: { id: string; name: string; duration: number | null; screenViews: number }[];
  summary: { accepted: number; rejected: number; duplicates: number; late: number };
  invalid?: [number, string][];
}

const services = useServices({ clickhouse: true });
let run = 0;

async function* lines(text: string): AsyncGenerator<string> {
  yield* text.split('\n');
}

async function replayText(text: string) {
  run += 1;
  const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}g${run}`));
  const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { owner: 'test', leaseMs: 10_000, flushMaxRows: 1_000, flushMaxBytes: 1 << 20, flushIntervalMs: 0 });
  for (const table of ['events', 'sessions']) {
    await services.clickhouse.ch.client.command({ query: `TRUNCATE TABLE ${services.clickhouse.database}.${table}` });
  }
  const invalid: [number, string][] = [];
  const summary = await replay(lines(text), buffer, flusher, {
    clock: 'event',
    drain: true,
    maxFutureMs: 3_600_000,
    chunkSize: 1,
    onInvalid: (line, reason) => invalid.push([line, reason]),
  });
  const rows = await queryRows<Expected['rows'][number]>(
    services.clickhouse.ch,
    `SELECT id, name, duration, screenViews FROM ${services.clickhouse.database}.events ORDER BY id`,
  );
  return { summary, rows, invalid, buffer };
}

const byId = (rows: Expected['rows']) => [...rows].sort((a, b) => (a.id < b.id ? -1 : 1));

describe('golden session streams', () => {
  const names = readdirSync(FIXTURES).filter((f) => f.endsWith('.ndjson')).map((f) => f.replace(/\.ndjson$/, ''));

  it.each(names)('%s gives the expected rows', async (name) => {
    const text = readFileSync(path.join(FIXTURES, `${name}.ndjson`), 'utf8');
    const expected = JSON.parse(readFileSync(path.join(FIXTURES, `${name}.expected.json`), 'utf8')) as Expected;
    const { summary, rows, invalid, buffer } = await replayText(text);
    expect(byId(rows)).toEqual(byId(expected.rows));
    expect(summary).toMatchObject({ ...expected.summary, rowsWritten: expected.rows.length });
    for (const [line, reason] of expected.invalid ?? []) {
      expect(invalid.find(([l]) => l === line)?.[1]).toContain(reason);
    }
    // nothing is left behind: no held rows, no backlog
    const backlog = await buffer.backlog();
    expect(backlog.reduce((n, b) => n + b.ready + b.inBatch + b.heldSessions, 0)).toBe(0);
  });

  it('writes one sessions row per finalised session, with its figures and first-event fields', async () => {
    const lines = readFileSync(path.join(FIXTURES, 'd1-next-boundary.ndjson'), 'utf8')
      .trim()
      .split('\n')
      .map((l, i) => (i === 0 ? JSON.stringify({ ...(JSON.parse(l) as object), referrerName: 'Google', country: 'DE', device: 'mobile' }) : l));
    const { summary } = await replayText(lines.join('\n'));
    expect(summary.sessionsWritten).toBe(1);
    const rows = await queryRows(
      services.clickhouse.ch,
      `SELECT id, projectId, start, end, duration, screenViews, eventCount, entryPath, exitPath, isBounce, referrerName, country, device
         FROM ${services.clickhouse.database}.sessions FINAL`,
    );
    expect(rows).toEqual([
      {
        id: 's1',
        projectId: 'shop',
        start: '2026-10-01 10:00:00.000',
        end: '2026-10-01 10:01:10.000',
        duration: 70_000,
        screenViews: 3,
        eventCount: 5,
        entryPath: '/',
        exitPath: '/cart',
        isBounce: 0,
        referrerName: 'Google',
        country: 'DE',
        device: 'mobile',
      },
    ]);
  });

  it('o1-reordered gives the same rows as the same events in createdAt order', async () => {
    const text = readFileSync(path.join(FIXTURES, 'o1-reordered.ndjson'), 'utf8');
    const sorted = text
      .trim()
      .split('\n')
      .sort((a, b) => (JSON.parse(a) as { createdAt: string }).createdAt.localeCompare((JSON.parse(b) as { createdAt: string }).createdAt))
      .join('\n');
    expect((await replayText(sorted)).rows).toEqual((await replayText(text)).rows);
  });
});
