/**
 * O1/O3 as properties, against a real redis-server: for any session (screen
 * views, session ends, other events, idle gaps longer than the timeout, retried
 * duplicates, page_hidden / page_visible) and any arrival order in which no
 * event is delayed by as much as the grace time, sweeping as time passes gives
 * exactly the rows of the reference model: none lost, none twice, every
 * duration and engaged time as DESIGN §2 says.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeSessionRows, type RowFigures, type SessionEvent } from '../../../src/buffer/durations.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import type { NormalizedEvent } from '../../../src/event/normalize.js';
import { ev, figures, readyRows, settings, T0 } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const GRACE = 100;
const TIMEOUT = 1_000;

const services = useServices({ clickhouse: false });
let run = 0;

/** A session: events at increasing offsets, some gaps longer than the timeout. */
const sessionArb = fc
  .array(
    fc.record({
      gap: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 1_500 })),
      kind: fc.constantFrom<SessionEvent['kind']>('v', 'v', 'o', 'e', 'h', 's'),
      delay: fc.integer({ min: 0, max: GRACE - 1 }),
      retried: fc.boolean(),
    }),
    { minLength: 1, maxLength: 14 },
  )
  .map((items) => {
    let t = 0;
    return items.map((item, i) => {
      t += item.gap;
      return { id: `e${String(i).padStart(2, '0')}`, createdAtMs: T0 + t, kind: item.kind, delay: item.delay, retried: item.retried };
    });
  });

async function runArrivals(buffer: SessionBuffer, arrivals: { at: number; event: NormalizedEvent }[]): Promise<void> {
  for (const a of arrivals) {
    await buffer.sweep(a.at);
    await buffer.ingest([a.event], a.at);
  }
  await buffer.sweep(arrivals.at(-1)!.at + TIMEOUT + GRACE + 1);
}

describe('arrival order', () => {
  it('any arrival order within the grace window gives the rows of in-order arrival', async () => {
    await fc.assert(
      fc.asyncProperty(sessionArb, fc.integer({ min: 1, max: 3 }), async (session, sessions) => {
        run += 1;
        const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}o${run}`, { graceMs: GRACE, sessionTimeoutMs: TIMEOUT, bufferShards: 2 }));
        const arrivals: { at: number; event: NormalizedEvent }[] = [];
        const expected: Record<string, RowFigures> = {};
        for (let s = 0; s < sessions; s += 1) {
          const sessionId = `s${s}`;
          for (const e of session) {
            const event = ev({ ...e, id: `${sessionId}-${e.id}`, sessionId });
            arrivals.push({ at: e.createdAtMs + e.delay, event });
            if (e.retried) arrivals.push({ at: e.createdAtMs + e.delay + 7, event });
          }
          const model = computeSessionRows(session.map((e) => ({ ...e, id: `${sessionId}-${e.id}` })), TIMEOUT);
          for (const [id, f] of model) expected[id] = f;
        }
        arrivals.sort((a, b) => a.at - b.at);
        await runArrivals(buffer, arrivals);
        const rows = await readyRows(services.redis, buffer);
        expect(rows).toHaveLength(Object.keys(expected).length);
        expect(figures(rows)).toEqual(expected);
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 150) },
    );
  });

  it('gives the same rows whether a chunk of events arrives in order or shuffled', async () => {
    await fc.assert(
      fc.asyncProperty(sessionArb, fc.infiniteStream(fc.integer()), async (session, noise) => {
        const rowsFor = async (order: typeof session): Promise<ReturnType<typeof figures>> => {
          run += 1;
          const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}c${run}`, { graceMs: GRACE, sessionTimeoutMs: TIMEOUT }));
          const now = session.at(-1)!.createdAtMs;
          await buffer.ingest(order.map((e) => ev(e)), now);
          await buffer.sweep(now + TIMEOUT + GRACE + 1);
          return figures(await readyRows(services.redis, buffer));
        };
        const it = noise[Symbol.iterator]();
        const shuffled = [...session].sort(() => (it.next().value as number) % 3 - 1);
        expect(await rowsFor(shuffled)).toEqual(await rowsFor(session));
      }),
      { numRuns: 50 },
    );
  });
});

describe('late events (O2)', () => {
  it('emits an event that arrives after its neighbours were emitted, with its own duration, and counts it late', async () => {
    run += 1;
    const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}l${run}`, { graceMs: GRACE, sessionTimeoutMs: TIMEOUT }));
    await buffer.ingest([ev({ id: 'v1', createdAtMs: T0, kind: 'v' }), ev({ id: 'v3', createdAtMs: T0 + 600, kind: 'v' })], T0 + 600);
    await buffer.sweep(T0 + 600 + GRACE);
    expect(figures(await readyRows(services.redis, buffer))).toEqual({ v1: { duration: 600, screenViews: 0, engaged: 600 } });
    const late = await buffer.ingest([ev({ id: 'v2', createdAtMs: T0 + 200, kind: 'v' })], T0 + 900);
    expect(late).toEqual({ accepted: 1, duplicates: 0, late: 1 });
    await buffer.sweep(T0 + 900 + TIMEOUT + GRACE);
    expect(figures(await readyRows(services.redis, buffer))).toEqual({
      v1: { duration: 600, screenViews: 0, engaged: 600 },
      v2: { duration: 400, screenViews: 0, engaged: 400 },
      v3: { duration: null, screenViews: 0, engaged: null },
    });
  });

  it('re-settles a held view when an earlier boundary arrives inside the grace window', async () => {
    run += 1;
    const buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}r${run}`, { graceMs: GRACE, sessionTimeoutMs: TIMEOUT }));
    await buffer.ingest([ev({ id: 'v1', createdAtMs: T0, kind: 'v' }), ev({ id: 'v3', createdAtMs: T0 + 600, kind: 'v' })], T0 + 600);
    await buffer.ingest([ev({ id: 'v2', createdAtMs: T0 + 200, kind: 'v' })], T0 + 650);
    expect((await buffer.sweep(T0 + 600 + GRACE)).emitted).toBe(0);
    await buffer.sweep(T0 + 650 + GRACE);
    expect(figures(await readyRows(services.redis, buffer))).toEqual({ v1: { duration: 200, screenViews: 0, engaged: 200 }, v2: { duration: 400, screenViews: 0, engaged: 400 } });
  });
});
