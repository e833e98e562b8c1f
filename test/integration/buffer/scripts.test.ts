/**
 * Each Lua script against a real redis-server started by this file: the normal
 * case, every error code, a repeated call, and a call after SCRIPT FLUSH.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { computeSessionRows } from '../../../src/buffer/durations.js';
import { LuaScript, ScriptCode, scripts } from '../../../src/buffer/scripts.js';
import { heldRows, orderedEvents, sessionState } from '../../../src/buffer/inspect.js';
import { SessionBuffer } from '../../../src/buffer/session-buffer.js';
import { finishedRow, parsePayload } from '../../../src/event/columns.js';
import { ev, readyRows, settings, T0 } from '../../helpers/buffer.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: false });
let buffer: SessionBuffer;
let n = 0;
beforeEach(() => {
  n += 1;
  buffer = new SessionBuffer(services.redis, settings(`${services.server.prefix}${n}`, { bufferShards: 1 }));
});

const view = (id: string, at: number) => ev({ id, createdAtMs: T0 + at, kind: 'v' });

describe('ingest-4.lua', () => {
  it('holds screen_views and writes other events to ready at once', async () => {
    const r = await buffer.ingest([view('a', 0), ev({ id: 'c', createdAtMs: T0 + 1, kind: 'o' })], T0);
    expect(r).toEqual({ accepted: 2, duplicates: 0, late: 0 });
    expect((await readyRows(services.redis, buffer)).map((x) => x.id)).toEqual(['c']);
    const live = await buffer.sessionView('p1', 's1');
    expect(live.events.find((e) => e.id === 'a')?.state).toBe('unsettled');
    expect(live.lastArrivalAt).toBe(new Date(T0).toISOString());
  });

  it('shows the live view of a session from its packed metadata: last arrival and session_end arrival', async () => {
    await buffer.ingest([view('a', 0)], T0);
    await buffer.ingest([ev({ id: 'end', createdAtMs: T0 + 4_000, kind: 'e' })], T0 + 7_000);
    await buffer.ingest([ev({ id: 'c', createdAtMs: T0 + 4_500, kind: 'o' })], T0 + 9_000);
    const live = await buffer.sessionView('p1', 's1');
    expect(live).toMatchObject({ state: 'open', lastArrivalAt: new Date(T0 + 9_000).toISOString(), sessionEndArrivalAt: new Date(T0 + 7_000).toISOString() });
    expect(live.events.map((e) => [e.id, e.state])).toEqual([
      ['a', 'settled'],
      ['end', 'settled'],
      ['c', 'emitted'],
    ]);
  });

  it('drops an id it has seen before, when called twice with the same events', async () => {
    await buffer.ingest([view('a', 0), view('b', 5_000)], T0);
    const again = await buffer.ingest([view('a', 0), view('b', 5_000)], T0 + 1);
    expect(again).toEqual({ accepted: 0, duplicates: 2, late: 0 });
    expect((await buffer.stats()).duplicate).toBe(2);
  });

  it('deduplicates events without a session within the dedup window', async () => {
    const e = ev({ id: 'x', createdAtMs: T0, kind: 'o', sessionId: '' });
    expect((await buffer.ingest([e], T0)).accepted).toBe(1);
    expect((await buffer.ingest([e], T0 + 1)).duplicates).toBe(1);
    expect(await readyRows(services.redis, buffer)).toHaveLength(1);
  });

  it('answers ARGS_MISMATCH when the key count does not match the session count', async () => {
    const sk = buffer.shardKeys(0);
    const reply = await scripts.ingest.run(services.redis, [sk.due, sk.ready, sk.stats, sk.seen], [T0, 10_000, 60_000, 60_000, 120_000, 1, 0]);
    expect(reply).toBe(ScriptCode.ARGS_MISMATCH);
  });

  it('still works after SCRIPT FLUSH (NOSCRIPT is answered by reloading)', async () => {
    await buffer.ingest([view('a', 0)], T0);
    await services.redis.script('FLUSH');
    expect((await buffer.ingest([view('b', 1_000)], T0)).accepted).toBe(1);
  });

  it('keeps a session in a sorted set of its events and a hash of its state, facts and held payloads; emits the row with that payload', async () => {
    await buffer.ingest([view('a', 0), view('b', 5_000), ev({ id: 'c', createdAtMs: T0 + 6_000, kind: 'o' })], T0);
    const k = buffer.keys.session(0, '2:p1s1');
    const h = await services.redis.hgetall(k.h);
    expect(Object.keys(h).sort()).toEqual(['#facts', '#state', 'a\tv', 'b\tv']);
    expect(parsePayload(h['a\tv'] ?? '')).toMatchObject({ id: 'a', path: '/page/a' });
    // positional: no column names are held for every row (src/event/columns.ts), and
    // without its '[' (heldPayload), so the sweep's row is one concatenation
    expect(h['a\tv']).not.toContain('"projectId"');
    expect(h['a\tv']?.slice(0, 4)).toBe('"a",');
    expect(orderedEvents(await services.redis.zrange(k.z, '0', '-1', 'WITHSCORES'))).toEqual([
      { id: 'a', kind: 'v', createdAtMs: T0 },
      { id: 'b', kind: 'v', createdAtMs: T0 + 5_000 },
      { id: 'c', kind: 'o', createdAtMs: T0 + 6_000 },
    ]);
    // the settled row is in p, the unsettled tail screen_view in the state only
    expect(await services.redis.zrange(k.p, '0', '-1', 'WITHSCORES')).toEqual(['a\tv', String(T0 + 10_000)]);
    const state = sessionState((await services.redis.hgetBuffer(k.h, '#state')) ?? undefined);
    expect(heldRows(await services.redis.zrange(k.p, '0', '-1', 'WITHSCORES'), state)).toEqual([
      { member: 'a\tv', emitAtMs: T0 + 10_000 },
      { member: 'b\tv', emitAtMs: null },
    ]);
    expect(state).toMatchObject({ lastArrival: T0, lastMember: 'c\to', tailBoundary: 'b\tv', tailHeld: true, entryPath: '"/page/a"', exitPath: '"/page/b"', views: 2 });
    await buffer.sweep(T0 + 10_001);
    const rows = await readyRows(services.redis, buffer);
    expect(rows.map((r) => [r.id, r.duration])).toEqual([['c', null], ['a', 5_000]]);
    expect(await services.redis.hexists(k.h, 'a\tv')).toBe(0);
  });

  /** The frozen scripts of layout 0.5 (release 0.1.0), with their include resolved. */
  function previousScripts(): { ingest: LuaScript; sweep: LuaScript } {
    const fixture = (name: string): string =>
      readFileSync(new URL(`../../fixtures/lua-0.5/${name}`, import.meta.url), 'utf8').replace('--- @include "session"', readFileSync(new URL('../../fixtures/lua-0.5/session.lua', import.meta.url), 'utf8'));
    return { ingest: new LuaScript('ingestPrevious', 4, fixture('ingest-4.lua')), sweep: new LuaScript('sweepPrevious', 4, fixture('sweep-4.lua')) };
  }
  const TIMING = [10_000, 1_800_000, 1_800_000, 86_400_000];

  it('carries on a session held by the previous release (layout 0.5: the order as an index string in the hash), converting it on first touch', async () => {
    const previous = previousScripts();
    const sk = buffer.shardKeys(0);
    const k = buffer.keys.session(0, '2:p1s1');
    const before = [view('a', 0), ev({ id: 'o1', createdAtMs: T0 + 1_000, kind: 'o' }), view('b', 5_000), view('d', 6_000)];
    // the previous release's arguments: (id, createdAt, kind, data, path) per event, and its bound of events per session
    const args: (string | number)[] = [T0, ...TIMING, 1, 0, 5_000, '2:p1s1', before.length, T0, 'a\tv', JSON.stringify({ id: 's1', ...before[0]?.sessionFacts })];
    for (const e of before) args.push(e.id, e.createdAtMs, e.kind, e.kind === 'o' ? finishedRow(e.payload) : e.payload, e.kind === 'v' ? JSON.stringify(e.path) : '');
    expect(await previous.ingest.run(services.redis, [sk.due, sk.ready, sk.stats, sk.seen, k.z, k.h, k.p], args)).toEqual([4, 0, 0, 'aaaa']);
    // the previous release emitted 'a' (settled by 'b') already
    expect(await previous.sweep.run(services.redis, [sk.due, sk.ready, sk.stats, sk.sessionsReady, k.z, k.h, k.p], [T0 + 10_001, ...TIMING, 1, '2:p1s1'])).toEqual([2, 0]);
    expect(await services.redis.hexists(k.h, '#index')).toBe(1);
    expect(await services.redis.exists(k.z)).toBe(0);

    // this release: a repeat, an event landing between known ones, one after them
    const after = [view('b', 5_000), view('x', 3_000), view('c', 9_000)];
    expect(await buffer.ingest(after, T0 + 11_000)).toEqual({ accepted: 2, duplicates: 1, late: 1 });
    expect(await services.redis.hexists(k.h, '#index')).toBe(0);
    expect(await services.redis.zcard(k.z)).toBe(6);
    expect(await services.redis.pttl(k.z)).toBeGreaterThan(await services.redis.pttl(k.h));
    // the rows 0.5 still held ('d') and this call's are held, their payloads under their members: the
    // settled ones ('d' by 'c', 'x' by 'd') in p, the tail screen_view 'c' unsettled in the state
    expect((await services.redis.zrange(k.p, '0', '-1')).sort()).toEqual(['d\tv', 'x\tv']);
    expect(sessionState((await services.redis.hgetBuffer(k.h, '#state')) ?? undefined)).toMatchObject({ tailBoundary: 'c\tv', tailHeld: true });
    expect((await services.redis.hkeys(k.h)).sort()).toEqual(['#facts', '#state', 'c\tv', 'd\tv', 'x\tv']);
    await buffer.sweep(T0 + 11_000 + 1_800_000 + 20_001);

    const all = [...before, ...after.slice(1)];
    const want = computeSessionRows(all.map((e) => ({ id: e.id, createdAtMs: e.createdAtMs, kind: e.kind })), 1_800_000);
    const rows = await readyRows(services.redis, buffer);
    expect(rows.map((r) => r.id).sort()).toEqual(all.map((e) => e.id).sort());
    for (const r of rows) {
      // 'a' was emitted by the previous release before 'x' came (late, O2): it keeps the 5 000 it had then
      const expected = r.id === 'a' ? 5_000 : (want.get(r.id)?.duration ?? null);
      expect({ id: r.id, duration: r.duration }).toEqual({ id: r.id, duration: expected });
      expect((r as unknown as { path: string }).path).toBe(`/page/${r.id}`);
    }
    const [session] = (await services.redis.lrange(sk.sessionsReady, 0, -1)).map((t) => JSON.parse(t) as Record<string, unknown>);
    expect(session).toMatchObject({ id: 's1', screenViews: 5, eventCount: 6, entryPath: '/page/a', exitPath: '/page/c', duration: 9_000 });
  });

  it('converts a session of layout 0.5 finalised already (its tombstone) and still drops its retried events', async () => {
    const previous = previousScripts();
    const sk = buffer.shardKeys(0);
    const k = buffer.keys.session(0, '2:p1s1');
    const a = view('a', 0);
    await previous.ingest.run(services.redis, [sk.due, sk.ready, sk.stats, sk.seen, k.z, k.h, k.p], [T0, ...TIMING, 1, 0, 5_000, '2:p1s1', 1, T0, 'a\tv', '{"id":"s1"}', 'a', T0, 'v', a.payload, '"/page/a"']);
    expect(await previous.sweep.run(services.redis, [sk.due, sk.ready, sk.stats, sk.sessionsReady, k.z, k.h, k.p], [T0 + 1_810_001, ...TIMING, 1, '2:p1s1'])).toEqual([1, 1]);
    expect(await buffer.ingest([a], T0 + 1_810_002)).toEqual({ accepted: 0, duplicates: 1, late: 0 });
    expect(await services.redis.zrange(k.z, '0', '-1')).toEqual(['a\tv']);
    expect(await services.redis.pttl(k.z)).toBeGreaterThan(0);
  });

  it("puts a TTL on both keys of a held session, the order set's a second longer", async () => {
    await buffer.ingest([view('a', 0), view('b', 1_000)], T0);
    const keys = buffer.keys.session(0, '2:p1s1');
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(0);
    expect(await services.redis.pttl(keys.z)).toBeGreaterThan((await services.redis.pttl(keys.h)) + 900);
  });

  it('sets the TTL again once a quarter of bufferTtlMs has passed on the buffer clock, not on every call', async () => {
    const keys = buffer.keys.session(0, '2:p1s1');
    const ttl = settings(services.server.prefix).bufferTtlMs;
    await buffer.ingest([view('a', 0)], T0);
    await services.redis.pexpire(keys.h, 1_000_000);
    await buffer.ingest([view('b', 1_000)], T0 + 1_000);
    expect(await services.redis.pttl(keys.h)).toBeLessThanOrEqual(1_000_000);
    await buffer.ingest([view('c', 2_000)], T0 + ttl / 4);
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(1_000_000);
  });

  it('restores the long TTL when a finalised session (short tombstone TTL) gets a new event', async () => {
    const keys = buffer.keys.session(0, '2:p1s1');
    await buffer.ingest([view('a', 0)], T0);
    await buffer.sweep(T0 + 1_800_000 + 10_000);
    expect(await services.redis.pttl(keys.h)).toBeLessThanOrEqual(settings(services.server.prefix).dedupWindowMs);
    await buffer.ingest([view('b', 3_600_000)], T0 + 3_600_000);
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(settings(services.server.prefix).dedupWindowMs);
  });
});

describe('engaged time (E1)', () => {
  it('gives each view its engaged time from the visibility events and sums it on the sessions row', async () => {
    await buffer.ingest(
      [view('v1', 0), ev({ id: 'h1', createdAtMs: T0 + 5_000, kind: 'h' }), ev({ id: 's1', createdAtMs: T0 + 65_000, kind: 's' }), view('v2', 70_000), ev({ id: 'h2', createdAtMs: T0 + 82_000, kind: 'h' })],
      T0 + 82_000,
    );
    await buffer.sweep(T0 + 82_000 + 1_800_000 + 10_001);
    const rows = await readyRows(services.redis, buffer);
    expect(Object.fromEntries(rows.map((r) => [r.id, [r.duration, r.engagedMs ?? null]]))).toEqual({ v1: [70_000, 10_000], v2: [12_000, 12_000], h1: [null, null], s1: [null, null], h2: [null, null] });
    const [session] = (await services.redis.lrange(buffer.shardKeys(0).sessionsReady, 0, -1)).map((t) => JSON.parse(t) as Record<string, unknown>);
    expect(session).toMatchObject({ screenViews: 2, duration: 82_000, engagedMs: 22_000 });
  });

  it('sums the client-measured slices of visibility events (visibleMs) instead, kept in the member so a retry is still a duplicate', async () => {
    const hidden = ev({ id: 'h1', createdAtMs: T0 + 30_000, kind: 'h', sliceMs: 12_000 });
    await buffer.ingest([view('v1', 0), hidden, view('v2', 40_000)], T0 + 40_000);
    expect(await services.redis.zrange(buffer.keys.session(0, '2:p1s1').z, '0', '-1')).toContain('h1\t12000h');
    expect(await buffer.ingest([hidden], T0 + 40_001)).toEqual({ accepted: 0, duplicates: 1, late: 0 });
    await buffer.sweep(T0 + 50_001);
    expect((await readyRows(services.redis, buffer)).find((r) => r.id === 'v1')).toMatchObject({ duration: 40_000, engagedMs: 12_000 });
  });

  it('re-settles a held view when a visibility event inside it arrives out of order within the grace', async () => {
    await buffer.ingest([view('v1', 0), view('v2', 20_000)], T0 + 20_000);
    await buffer.ingest([ev({ id: 'h1', createdAtMs: T0 + 5_000, kind: 'h' })], T0 + 25_000);
    expect((await buffer.sweep(T0 + 30_000)).emitted).toBe(0);
    await buffer.sweep(T0 + 35_000);
    expect((await readyRows(services.redis, buffer)).find((r) => r.id === 'v1')).toMatchObject({ duration: 20_000, engagedMs: 5_000 });
  });
});

describe('sweep-4.lua', () => {
  it('emits a settled row only after grace, with its duration', async () => {
    await buffer.ingest([view('a', 0), view('b', 7_000)], T0 + 7_000);
    expect((await buffer.sweep(T0 + 7_000 + 9_999)).emitted).toBe(0);
    expect(await buffer.sweep(T0 + 7_000 + 10_000)).toEqual({ emitted: 1, finalised: 0 });
    expect(await readyRows(services.redis, buffer)).toMatchObject([{ id: 'a', duration: 7_000 }]);
  });

  it('emits nothing more when called twice at the same time', async () => {
    await buffer.ingest([view('a', 0), view('b', 7_000)], T0);
    await buffer.sweep(T0 + 20_000);
    expect(await buffer.sweep(T0 + 20_000)).toEqual({ emitted: 0, finalised: 0 });
  });

  it('finalises an idle session, keeps only a tombstone with a TTL, and still drops retries', async () => {
    await buffer.ingest([view('a', 0), ev({ id: 'c', createdAtMs: T0 + 3_000, kind: 'o' })], T0);
    expect((await buffer.sweep(T0 + 1_800_000 + 9_999)).finalised).toBe(0);
    expect(await buffer.sweep(T0 + 1_800_000 + 10_000)).toEqual({ emitted: 1, finalised: 1 });
    expect(await readyRows(services.redis, buffer)).toEqual(expect.arrayContaining([expect.objectContaining({ id: 'a', duration: 3_000 })]));
    const keys = buffer.keys.session(0, '2:p1s1');
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(0);
    expect(await services.redis.pttl(keys.z)).toBeGreaterThan(0);
    expect(await services.redis.exists(keys.h, keys.z)).toBe(2);
    expect((await buffer.sessionView('p1', 's1')).state).toBe('finalised');
    expect((await buffer.ingest([view('a', 0)], T0 + 1_800_001)).duplicates).toBe(1);
  });

  it('answers ARGS_MISMATCH when members and keys disagree', async () => {
    const sk = buffer.shardKeys(0);
    const reply = await scripts.sweep.run(services.redis, [sk.due, sk.ready, sk.stats, sk.sessionsReady], [T0, 10_000, 60_000, 60_000, 120_000, 1, 'x']);
    expect(reply).toBe(ScriptCode.ARGS_MISMATCH);
  });

  it('still works after SCRIPT FLUSH', async () => {
    await buffer.ingest([view('a', 0), view('b', 1_000)], T0);
    await services.redis.script('FLUSH');
    expect((await buffer.sweep(T0 + 11_000)).emitted).toBe(1);
  });
});

describe('claimBatch-4.lua, ackBatch-4.lua, releaseLease-1.lua', () => {
  async function fillReady(rows: number): Promise<void> {
    await services.redis.rpush(buffer.shardKeys(0).ready, ...Array.from({ length: rows }, (_, i) => `{"id":"r${i}"}`));
  }
  const claim = (owner: string, id: string, maxRows = 3, maxBytes = 1_000_000) => {
    const sk = buffer.shardKeys(0);
    return scripts.claimBatch.run(services.redis, [sk.ready, sk.batch, sk.batchMeta, sk.lease], [owner, 30_000, id, maxRows, maxBytes]);
  };
  const ack = (id: string, ...dead: string[]) => {
    const sk = buffer.shardKeys(0);
    return scripts.ackBatch.run(services.redis, [sk.batch, sk.batchMeta, sk.stats, sk.dead], [id, ...dead]);
  };

  it('fixes a batch of at most maxRows and returns the same batch again until it is acknowledged', async () => {
    await fillReady(5);
    expect(await claim('f1', 'B1')).toEqual([2, 'B1', '{"id":"r0"}', '{"id":"r1"}', '{"id":"r2"}']);
    expect(await claim('f1', 'B2')).toEqual([1, 'B1', '{"id":"r0"}', '{"id":"r1"}', '{"id":"r2"}']);
    expect(await ack('B1')).toBe(3);
    expect(await claim('f1', 'B3')).toEqual([2, 'B3', '{"id":"r3"}', '{"id":"r4"}']);
  });

  it('limits a batch by bytes but always takes at least one row', async () => {
    await fillReady(3);
    expect(await claim('f1', 'B1', 10, 5)).toEqual([2, 'B1', '{"id":"r0"}']);
  });

  it('answers LEASE_HELD to a second owner, and lets it in once the lease is released', async () => {
    await fillReady(1);
    await claim('f1', 'B1');
    expect(await claim('f2', 'B2')).toBe(ScriptCode.LEASE_HELD);
    const sk = buffer.shardKeys(0);
    expect(await scripts.releaseLease.run(services.redis, [sk.lease], ['f2'])).toBe(0);
    expect(await scripts.releaseLease.run(services.redis, [sk.lease], ['f1'])).toBe(1);
    expect(await scripts.releaseLease.run(services.redis, [sk.lease], ['f1'])).toBe(0); // twice: nothing more to release
    expect(await claim('f2', 'B2')).toEqual([1, 'B1', '{"id":"r0"}']);
  });

  it('answers BATCH_MISMATCH when acknowledging twice or a wrong id', async () => {
    await fillReady(1);
    await claim('f1', 'B1');
    expect(await ack('nope')).toBe(ScriptCode.BATCH_MISMATCH);
    expect(await ack('B1')).toBe(1);
    expect(await ack('B1')).toBe(ScriptCode.BATCH_MISMATCH);
  });

  it('moves dead letters to the dead list in the same call that acknowledges the batch', async () => {
    await fillReady(3);
    await claim('f1', 'B1');
    expect(await ack('B1', '{"error":"bad","row":{"id":"r1"}}')).toBe(3);
    expect(await services.redis.lrange(buffer.shardKeys(0).dead, 0, -1)).toEqual(['{"error":"bad","row":{"id":"r1"}}']);
    expect(await buffer.stats()).toMatchObject({ flushed: 2, dead: 1 });
  });

  it('returns nothing to do on an empty shard', async () => {
    expect(await claim('f1', 'B1')).toEqual([0]);
  });

  it('still works after SCRIPT FLUSH', async () => {
    await fillReady(1);
    await services.redis.script('FLUSH');
    expect(await claim('f1', 'B1')).toEqual([2, 'B1', '{"id":"r0"}']);
    await services.redis.script('FLUSH');
    expect(await ack('B1')).toBe(1);
  });
});
