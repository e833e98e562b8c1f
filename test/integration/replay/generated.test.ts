/**
 * A generated stream of realistic sessions (jittered arrival inside the grace
 * window, idle gaps, session ends, duplicates from retries) replayed through
 * the replay path into ClickHouse gives, row for row, what the reference
 * model of DESIGN §2 computes from the same events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeSessionRows, type SessionEvent } from '../../../src/buffer/durations.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { queryRows } from '../../../src/clickhouse/client.js';
import { Flusher } from '../../../src/flush/flusher.js';
import { generateEvents } from '../../../src/generate/model.js';
import { replay } from '../../../src/replay/replay.js';
import { settings } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: true });

describe('replay of a generated stream', () => {
  it('writes every event exactly once with the durations of the reference model', async () => {
    const events = generateEvents({ sessions: 600, seed: 11, jitterMs: 9_000, lateFraction: 0 });
    // retried jobs: some events arrive twice
    const stream = events.flatMap((e, i) => (i % 97 === 0 ? [e, e] : [e]));
    const buffer = new SessionBuffer(services.redis, settings(services.server.prefix, { bufferShards: 8 }));
    const flusher = new Flusher(services.redis, buffer, services.clickhouse.ch, { owner: 't', leaseMs: 10_000, flushMaxRows: 500, flushMaxBytes: 1 << 22, flushIntervalMs: 0 });
    async function* lines(): AsyncGenerator<string> {
      for (const e of stream) yield JSON.stringify(e);
    }
    const summary = await replay(lines(), buffer, flusher, { clock: 'event', drain: true, maxFutureMs: 3_600_000, chunkSize: 50 });
    expect(summary).toMatchObject({ accepted: events.length, duplicates: stream.length - events.length, rejected: 0, late: 0 });

    const bySession = new Map<string, SessionEvent[]>();
    for (const e of events) {
      const list = bySession.get(e.sessionId ?? '') ?? [];
      const kind = e.name === 'screen_view' ? 'v' : e.name === 'session_end' ? 'e' : 'o';
      list.push({ id: e.id, createdAtMs: Date.parse(e.createdAt), kind });
      bySession.set(e.sessionId ?? '', list);
    }
    const expected = new Map<string, { duration: number | null; screenViews: number }>();
    for (const list of bySession.values()) for (const [id, f] of computeSessionRows(list, 1_800_000)) expected.set(id, f);

    const rows = await queryRows<{ id: string; duration: number | null; screenViews: number }>(
      services.clickhouse.ch,
      `SELECT id, duration, screenViews FROM ${services.clickhouse.database}.events`,
    );
    expect(rows).toHaveLength(events.length);
    const wrong = rows.filter((r) => {
      const f = expected.get(r.id);
      return !f || f.duration !== r.duration || f.screenViews !== r.screenViews;
    });
    expect(wrong).toEqual([]);
    // the stream exercises every rule
    const figures = [...expected.values()];
    expect(figures.some((f) => f.duration === null)).toBe(true);
    expect(figures.some((f) => f.screenViews > 0)).toBe(true);
  });
});
