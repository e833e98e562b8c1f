/**
 * Sessions of tens of thousands of events, against a real redis-server: no
 * result depends on how long a session is (DESIGN §2), and while a session is
 * held its events are ordered in a Redis sorted set.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { computeSessionRows, type SessionEvent } from '../../../src/buffer/durations.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { prng } from '../../../src/generate/model.js';
import { ev, figures, readyRows, settings, T0, type EmittedRow } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: false });
let run = 0;

interface Arrival {
  at: number;
  event: SessionEvent;
}

/**
 * Feeds arrivals to the buffer as a worker would: in calls of up to `perCall`
 * events that arrived within `spanMs` of each other (the call's clock is its
 * newest arrival), with a sweep at every call's clock, then a final sweep
 * after the session went idle.
 */
async function feed(buffer: SessionBuffer, arrivals: readonly Arrival[], perCall: number, spanMs: number, timeoutMs: number, graceMs: number): Promise<void> {
  const sorted = [...arrivals].sort((a, b) => a.at - b.at);
  for (let i = 0; i < sorted.length; ) {
    const first = (sorted[i] as Arrival).at;
    let j = i + 1;
    while (j < sorted.length && j - i < perCall && (sorted[j] as Arrival).at - first <= spanMs) j += 1;
    const slice = sorted.slice(i, j);
    const now = (slice.at(-1) as Arrival).at;
    await buffer.sweep(now);
    await buffer.ingest(slice.map((a) => ev(a.event)), now);
    i = j;
  }
  await buffer.sweep((sorted.at(-1) as Arrival).at + timeoutMs + graceMs + 1);
}

/** Every row against the reference model: the ids that differ, with both figures. */
function wrongRows(rows: readonly EmittedRow[], events: readonly SessionEvent[], timeoutMs: number): string[] {
  const want = computeSessionRows(events, timeoutMs);
  const got = figures(rows);
  const wrong: string[] = [];
  for (const [id, f] of want) {
    const g = got[id];
    if (!g || g.duration !== f.duration || g.screenViews !== f.screenViews || g.engaged !== f.engaged) wrong.push(`${id}: got ${JSON.stringify(g)}, want ${JSON.stringify(f)}`);
  }
  return wrong;
}

/**
 * A long session: views with clicks and page_hidden / page_visible between
 * them, a session_end now and then (a new visit follows), and a few idle gaps
 * longer than the timeout. Each
 * event arrives up to half the grace after its createdAt, so neighbours a few
 * seconds apart arrive out of order.
 */
function longSession(count: number, seed: number, graceMs: number, timeoutMs: number): Arrival[] {
  const r = prng(seed);
  const arrivals: Arrival[] = [];
  let t = T0;
  for (let i = 0; i < count; i += 1) {
    t += r() < 0.002 ? timeoutMs + 1 + Math.floor(r() * 1_000) : Math.floor(r() * 0.3 * graceMs);
    const x = r();
    const kind: SessionEvent['kind'] = x < 0.45 ? 'v' : x < 0.452 ? 'e' : x < 0.55 ? 'h' : x < 0.65 ? 's' : 'o';
    arrivals.push({ at: t + Math.floor((r() * graceMs) / 2), event: { id: `e${String(i).padStart(6, '0')}`, createdAtMs: t, kind } });
  }
  return arrivals;
}

describe('long sessions', () => {
  it('gives every row of a 30 000-event session arriving out of order its DESIGN §2 duration', async () => {
    const grace = 10_000;
    const timeout = 1_800_000;
    run += 1;
    const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}long${run}`, { bufferShards: 1, graceMs: grace, sessionTimeoutMs: timeout }));
    const arrivals = longSession(30_000, 30, grace, timeout);
    await feed(buffer, arrivals, 50, grace / 4, timeout, grace);
    const rows = await readyRows(services.redis, buffer);
    expect(rows).toHaveLength(30_000);
    expect(wrongRows(rows, arrivals.map((a) => a.event), timeout).slice(0, 5)).toEqual([]);
    const stats = await buffer.stats();
    expect(stats.late ?? 0).toBe(0);
    expect(stats.duplicate ?? 0).toBe(0);
  }, 240_000);

  it('holds a session in a sorted set: createdAt scores, members in (createdAt, id) order, one per known event', async () => {
    run += 1;
    const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}z${run}`, { bufferShards: 1 }));
    const events: SessionEvent[] = [
      { id: 'b', createdAtMs: T0 + 1_000, kind: 'v' },
      { id: 'a', createdAtMs: T0 + 1_000, kind: 'o' },
      { id: 'c', createdAtMs: T0, kind: 'v' },
      { id: 'd', createdAtMs: T0 + 5_000, kind: 'e' },
    ];
    // out of order, in two calls, and one retried
    await buffer.ingest(events.slice(0, 2).map(ev), T0 + 1_000);
    await buffer.ingest([...events.slice(1), events[0] as SessionEvent].map(ev), T0 + 5_000);
    const key = buffer.keys.session(0, '2:p1s1').z;
    expect(await services.redis.type(key)).toBe('zset');
    expect(await services.redis.zrange(key, '0', '-1', 'WITHSCORES')).toEqual([
      'c\tv', String(T0),
      'a\to', String(T0 + 1_000),
      'b\tv', String(T0 + 1_000),
      'd\te', String(T0 + 5_000),
    ]);
    expect(await services.redis.pttl(key)).toBeGreaterThan(0);
  });

  it('emits a session of 12 000 held views in one sweep (no unpack of thousands of values at once)', async () => {
    run += 1;
    const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}big${run}`, { bufferShards: 1 }));
    const events: SessionEvent[] = Array.from({ length: 12_000 }, (_, i) => ({ id: `v${String(i).padStart(5, '0')}`, createdAtMs: T0 + i * 100, kind: 'v' }));
    const now = T0 + 12_000 * 100;
    for (let i = 0; i < events.length; i += 2_000) await buffer.ingest(events.slice(i, i + 2_000).map(ev), now);
    expect(await buffer.sweep(now + 10_000)).toEqual({ emitted: 11_999, finalised: 0 });
    await buffer.sweep(now + 1_800_000 + 10_001);
    const rows = await readyRows(services.redis, buffer);
    expect(wrongRows(rows, events, 1_800_000)).toEqual([]);
  }, 120_000);

  it('any arrival order within the grace gives the rows of the reference model, for sessions of 10 000+ events', async () => {
    const grace = 1_000;
    const timeout = 60_000;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 10_000, max: 12_000 }), fc.integer(), fc.integer({ min: 1, max: 200 }), async (count, seed, perCall) => {
        run += 1;
        const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}p${run}`, { bufferShards: 2, graceMs: grace, sessionTimeoutMs: timeout }));
        const arrivals = longSession(count, seed, grace, timeout);
        await feed(buffer, arrivals, perCall, grace / 4, timeout, grace);
        const rows = await readyRows(services.redis, buffer);
        expect(rows).toHaveLength(count);
        expect(wrongRows(rows, arrivals.map((a) => a.event), timeout).slice(0, 5)).toEqual([]);
      }),
      { numRuns: Number(process.env.LONG_PROPERTY_RUNS ?? 3) },
    );
  }, 300_000);
});
