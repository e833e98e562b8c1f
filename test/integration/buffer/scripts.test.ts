/**
 * Each Lua script against a real redis-server started by this file: the normal
 * case, every error code, a repeated call, and a call after SCRIPT FLUSH.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { computeSessionRows } from '../../../src/buffer/durations.js';
import { LuaScript, ScriptCode, scripts } from '../../../src/buffer/scripts.js';
import { SessionBuffer, sessionIndex, sessionState } from '../../../src/buffer/session-buffer.js';
import { parsePayload } from '../../../src/event/columns.js';
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

  it('keeps a session in one hash: the payload of a held row under its id, the index and the state; emits the row with that payload', async () => {
    await buffer.ingest([view('a', 0), view('b', 5_000), ev({ id: 'c', createdAtMs: T0 + 6_000, kind: 'o' })], T0);
    const k = buffer.keys.session(0, '2:p1s1');
    expect(await services.redis.exists(k.z, k.p)).toBe(0);
    const h = await services.redis.hgetall(k.h);
    expect(Object.keys(h).sort()).toEqual(['#facts', '#index', '#state', 'a', 'b']);
    expect(parsePayload(h.a ?? '')).toMatchObject({ id: 'a', path: '/page/a' });
    // positional: no column names are held for every row (src/event/columns.ts)
    expect(h.a).not.toContain('"projectId"');
    expect(h.a?.slice(0, 1)).toBe('[');
    expect(sessionIndex(h['#index'])).toEqual([
      { id: 'a', kind: 'v', createdAtMs: T0 },
      { id: 'b', kind: 'v', createdAtMs: T0 + 5_000 },
      { id: 'c', kind: 'o', createdAtMs: T0 + 6_000 },
    ]);
    const state = sessionState(await services.redis.hgetallBuffer(k.h));
    expect(state.held).toEqual([
      { member: 'a\tv', createdAtMs: T0, emitAtMs: T0 + 10_000 },
      { member: 'b\tv', createdAtMs: T0 + 5_000, emitAtMs: null },
    ]);
    expect(state.fields).toMatchObject({ lastArrival: T0, lastMember: 'c\to', tailBoundary: 'b\tv', entryPath: '"/page/a"', exitPath: '"/page/b"' });
    await buffer.sweep(T0 + 10_001);
    const rows = await readyRows(services.redis, buffer);
    expect(rows.map((r) => [r.id, r.duration])).toEqual([['c', null], ['a', 5_000]]);
    expect(await services.redis.hexists(k.h, 'a')).toBe(0);
  });

  it('carries on a session held by the previous release (0.4: packed metadata, z and p, state-prefixed payloads as objects), converting it on first touch', async () => {
    const fixture = (name: string): string =>
      readFileSync(new URL(`../../fixtures/lua-0.4/${name}`, import.meta.url), 'utf8').replace('--- @include "session"', readFileSync(new URL('../../fixtures/lua-0.4/session.lua', import.meta.url), 'utf8'));
    const previousIngest = new LuaScript('ingestPrevious', 4, fixture('ingest-4.lua'));
    const previousSweep = new LuaScript('sweepPrevious', 4, fixture('sweep-4.lua'));
    const sk = buffer.shardKeys(0);
    const k = buffer.keys.session(0, '2:p1s1');
    const timing = [10_000, 1_800_000, 1_800_000, 86_400_000];
    const before = [view('a', 0), ev({ id: 'o1', createdAtMs: T0 + 1_000, kind: 'o' }), view('b', 5_000), view('d', 6_000)];
    // the previous release's arguments: held values 'V' + object payload, finished rows as objects
    const args: (string | number)[] = [T0, ...timing, 1, 0, '2:p1s1', before.length, T0, 'a\tv', JSON.stringify({ id: 's1', ...before[0]?.sessionFacts })];
    for (const e of before) {
      const object = JSON.stringify(parsePayload(e.payload));
      const data = e.kind === 'o' ? `{"duration":null,"screenViews":0,${object.slice(1)}` : `V${object}`;
      args.push(e.id, e.createdAtMs, e.kind, data, e.kind === 'v' ? JSON.stringify(e.path) : '');
    }
    expect(await previousIngest.run(services.redis, [sk.due, sk.ready, sk.stats, sk.seen, k.z, k.h, k.p], args)).toEqual([4, 0, 0]);
    // the previous release emitted 'a' (settled by 'b') already
    expect(await previousSweep.run(services.redis, [sk.due, sk.ready, sk.stats, sk.sessionsReady, k.z, k.h, k.p], [T0 + 10_001, ...timing, 1, '2:p1s1'])).toEqual([2, 0]);
    expect(await services.redis.hexists(k.h, '#m')).toBe(1);

    // this release: a repeat, an event landing between known ones, one after them
    const after = [view('b', 5_000), view('x', 3_000), view('c', 9_000)];
    expect(await buffer.ingest(after, T0 + 11_000)).toEqual({ accepted: 2, duplicates: 1, late: 1 });
    expect(await services.redis.exists(k.z, k.p)).toBe(0);
    expect(await services.redis.hexists(k.h, '#m')).toBe(0);
    expect(await services.redis.pttl(k.h)).toBeGreaterThan(0);
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

  it('carries on a session held by release 0.1 (metadata in separate fields, payloads apart)', async () => {
    const previous = new LuaScript('ingestPrevious', 4, readFileSync(new URL('../../fixtures/lua-0.1/ingest-4.lua', import.meta.url), 'utf8'));
    const sk = buffer.shardKeys(0);
    const k = buffer.keys.session(0, '2:p1s1');
    const before = [view('a', 0), ev({ id: 'o1', createdAtMs: T0 + 1_000, kind: 'o' }), view('b', 5_000)];
    // the previous release's arguments: raw payloads, JSON objects
    const args: (string | number)[] = [T0, 10_000, 1_800_000, 1_800_000, 86_400_000, 1, 0, '2:p1s1', before.length, T0, 'a\tv', JSON.stringify({ id: 's1', ...before[0]?.sessionFacts })];
    for (const e of before) args.push(e.id, e.createdAtMs, e.kind, JSON.stringify(parsePayload(e.payload)), e.kind === 'v' ? JSON.stringify(e.path) : '');
    expect(await previous.run(services.redis, [sk.due, sk.ready, sk.stats, sk.seen, k.z, k.h, k.p], args)).toEqual([3, 0, 0]);
    expect(await services.redis.hexists(k.h, '#lt')).toBe(1);
    expect(await services.redis.hexists(k.h, '>a')).toBe(1);

    // the current scripts: an event after the others, one landing between them, a repeat
    const after = [view('c', 9_000), view('x', 3_000), view('b', 5_000)];
    expect(await buffer.ingest(after, T0 + 1_000)).toEqual({ accepted: 2, duplicates: 1, late: 0 });
    expect(await services.redis.hexists(k.h, '#lt')).toBe(0);
    expect(await services.redis.hexists(k.h, '>a')).toBe(0);
    expect(await services.redis.hexists(k.h, '#state')).toBe(1);
    expect(await services.redis.exists(k.z, k.p)).toBe(0);
    await buffer.sweep(T0 + 1_800_000 + 20_001);

    const all = [...before, ...after.slice(0, 2)];
    const want = computeSessionRows(all.map((e) => ({ id: e.id, createdAtMs: e.createdAtMs, kind: e.kind })), 1_800_000);
    const rows = await readyRows(services.redis, buffer);
    expect(rows).toHaveLength(all.length);
    for (const r of rows) {
      expect({ id: r.id, duration: r.duration }).toEqual({ id: r.id, duration: want.get(r.id)?.duration ?? null });
      expect((r as unknown as { path: string }).path).toBe(`/page/${r.id}`);
    }
    expect(rows.find((r) => r.id === 'a')?.duration).toBe(3_000);
    const [session] = (await services.redis.lrange(sk.sessionsReady, 0, -1)).map((t) => JSON.parse(t) as Record<string, unknown>);
    expect(session).toMatchObject({ id: 's1', screenViews: 4, eventCount: 5, entryPath: '/page/a', exitPath: '/page/c', duration: 9_000 });
  });

  it('bounds a session at maxSessionEvents: later events are written at once with duration NULL, deduplicated like events without a session', async () => {
    const capped = new SessionBuffer(services.redis, settings(`${services.server.prefix}${n}cap`, { bufferShards: 1, maxSessionEvents: 10 }));
    const events = Array.from({ length: 15 }, (_, i) => ev({ id: `c${i}`, createdAtMs: T0 + i * 1_000, kind: i % 2 === 0 ? 'v' : 'o' }));
    expect(await capped.ingest(events.slice(0, 8), T0)).toEqual({ accepted: 8, duplicates: 0, late: 0 });
    expect(await capped.ingest(events.slice(8), T0 + 8_000)).toEqual({ accepted: 7, duplicates: 0, late: 0 });
    // a retried job: every event is recognised, the ones past the bound through the dedup window
    expect(await capped.ingest(events, T0 + 9_000)).toEqual({ accepted: 0, duplicates: 15, late: 0 });
    const k = capped.keys.session(0, '2:p1s1');
    expect(sessionIndex((await services.redis.hget(k.h, '#index')) ?? '')).toHaveLength(10);
    expect((await capped.stats()).overflow).toBe(5);
    // c10..c14 went to ready at once, without a duration; c0..c9 are held or ready as usual
    const rows = await readyRows(services.redis, capped);
    expect(rows.filter((r) => Number(r.id.slice(1)) >= 10).map((r) => [r.id, r.duration])).toEqual([10, 11, 12, 13, 14].map((i) => [`c${i}`, null]));
    await capped.sweep(T0 + 9_000 + 1_800_000 + 10_001);
    const all = await readyRows(services.redis, capped);
    expect(all.map((r) => r.id).sort()).toEqual(events.map((e) => e.id).sort());
    // the held views got their durations from the bounded index (c8 is the last view in it: D2 to c9)
    expect(all.find((r) => r.id === 'c0')?.duration).toBe(2_000);
    expect(all.find((r) => r.id === 'c8')?.duration).toBe(1_000);
  });

  it('puts a TTL on the hash of a held session', async () => {
    await buffer.ingest([view('a', 0), view('b', 1_000)], T0);
    const keys = buffer.keys.session(0, '2:p1s1');
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(0);
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
    expect(await services.redis.exists(keys.p)).toBe(0);
    expect(await services.redis.pttl(keys.h)).toBeGreaterThan(0);
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
