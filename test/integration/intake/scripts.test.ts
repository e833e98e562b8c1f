/**
 * The intake's and the recovery's scripts against a real Redis, as STYLE asks
 * of every script: the normal case, every error code, a repeated call, and
 * after SCRIPT FLUSH.
 */
import { describe, expect, it } from 'vitest';
import { intakeSession, intakeSessions, redriveDead, ScriptCode, scripts } from '../../../src/buffer/scripts.js';
import { ScriptError } from '../../../src/errors.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: false });
const T = Date.UTC(2026, 11, 1, 10);

describe('intakeSessions-0.lua', () => {
  const keys = () => ({ today: `${services.server.prefix}:{d1}:dev:today`, yesterday: `${services.server.prefix}:{d1}:dev:yesterday` });

  it("starts a session under today's id, keeps it while events come within the timeout, and sets a TTL", async () => {
    const k = keys();
    const first = await intakeSession(services.redis, k, { nowMs: T, timeoutMs: 60_000, newSessionId: 's1', ttlMs: 120_000 });
    expect(first).toEqual({ holder: 'today', sessionId: 's1' });
    const again = await intakeSession(services.redis, k, { nowMs: T + 59_000, timeoutMs: 60_000, newSessionId: 's2', ttlMs: 120_000 });
    expect(again).toEqual({ holder: 'today', sessionId: 's1' });
    expect(await services.redis.get(k.today)).toBe(`s1\t${T + 59_000}`);
    expect(await services.redis.pttl(k.today)).toBeGreaterThan(100_000);
    // an older event does not move the record back
    await intakeSession(services.redis, k, { nowMs: T, timeoutMs: 60_000, newSessionId: 's3', ttlMs: 120_000 });
    expect(await services.redis.get(k.today)).toBe(`s1\t${T + 59_000}`);
    const later = await intakeSession(services.redis, k, { nowMs: T + 59_000 + 60_000, timeoutMs: 60_000, newSessionId: 's4', ttlMs: 120_000 });
    expect(later).toEqual({ holder: 'today', sessionId: 's4' });
  });

  it("keeps a live session recorded under yesterday's id", async () => {
    const k = { today: `${services.server.prefix}:{d2}:dev:t`, yesterday: `${services.server.prefix}:{d2}:dev:y` };
    await services.redis.set(k.yesterday, `old\t${T - 1_000}`);
    expect(await intakeSession(services.redis, k, { nowMs: T, timeoutMs: 60_000, newSessionId: 'new', ttlMs: 120_000 })).toEqual({ holder: 'yesterday', sessionId: 'old' });
    expect(await services.redis.exists(k.today)).toBe(0);
  });

  it('decides several visitors in one call, in order: the same visitor twice gets one session', async () => {
    const a = { today: `${services.server.prefix}:{d3}:dev:a`, yesterday: `${services.server.prefix}:{d3}:dev:a0` };
    const b = { today: `${services.server.prefix}:{d3}:dev:b`, yesterday: `${services.server.prefix}:{d3}:dev:b` };
    const replies = await intakeSessions(
      services.redis,
      [
        { ...a, nowMs: T, newSessionId: 'sa' },
        { ...b, nowMs: T, newSessionId: 'sb' },
        { ...a, nowMs: T + 1, newSessionId: 'sa2' },
      ],
      { timeoutMs: 60_000, ttlMs: 120_000 },
    );
    expect(replies.map((r) => r.sessionId)).toEqual(['sa', 'sb', 'sa']);
    expect(await services.redis.get(a.today)).toBe(`sa\t${T + 1}`);
    // an odd number of keys is ARGS_MISMATCH
    expect(await scripts.intakeSessions.run(services.redis, [a.today], [60_000, 120_000, T, 'x'])).toBe(ScriptCode.ARGS_MISMATCH);
  });

  it('answers ARGS_MISMATCH for an argument that is not a number, and works after SCRIPT FLUSH', async () => {
    const k = keys();
    const bad = await intakeSession(services.redis, k, { nowMs: Number.NaN, timeoutMs: 60_000, newSessionId: 's', ttlMs: 1 }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(ScriptError);
    expect((bad as Error).message).toContain(`returned ${ScriptCode.ARGS_MISMATCH} (ARGS_MISMATCH)`);
    await services.redis.script('FLUSH');
    expect((await intakeSession(services.redis, k, { nowMs: T + 10 * 60_000, timeoutMs: 60_000, newSessionId: 'f', ttlMs: 120_000 })).sessionId).toBe('f');
  });
});

describe('redriveDead-3.lua', () => {
  it('moves an entry’s row to ready once: a repeated call finds nothing; works after SCRIPT FLUSH', async () => {
    const p = services.server.prefix;
    const k = { dead: `${p}:{7}:dead`, ready: `${p}:{7}:ready`, stats: `${p}:{7}:stats` };
    const entry = JSON.stringify({ error: 'x', row: { id: 'r1' }, text: '{"id":"r1"}' });
    await services.redis.rpush(k.dead, entry, 'other');
    await services.redis.hset(k.stats, 'dead', 2);
    await services.redis.script('FLUSH');
    expect(await redriveDead(services.redis, k, entry, '{"id":"r1"}')).toBe(true);
    expect(await redriveDead(services.redis, k, entry, '{"id":"r1"}')).toBe(false);
    expect(await services.redis.lrange(k.ready, 0, -1)).toEqual(['{"id":"r1"}']);
    expect(await services.redis.lrange(k.dead, 0, -1)).toEqual(['other']);
    expect(await services.redis.hgetall(k.stats)).toEqual({ dead: '1', redriven: '1' });
  });
});
