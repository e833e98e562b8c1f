import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseSessionArg } from '../../../src/buffer/inspect.js';
import { BufferKeys, parseSessionMember, sessionMember, shardOf } from '../../../src/buffer/keys.js';

describe('buffer keys', () => {
  it('round-trips any project and session id through the session member', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 64 }), fc.string({ maxLength: 128 }), (projectId, sessionId) => {
        expect(parseSessionMember(sessionMember(projectId, sessionId))).toEqual({ projectId, sessionId });
      }),
    );
  });

  it('keeps projects apart even when ids run together', () => {
    expect(sessionMember('a:b', 'c')).not.toBe(sessionMember('a', ':bc'));
  });

  it('puts the shard hash tag first in every key, whatever braces the ids hold', () => {
    const keys = new BufferKeys('el');
    const k = keys.session(7, sessionMember('{p}', '{s}'));
    for (const key of [k.z, k.p, k.h, ...Object.values(keys.shard(7))]) expect(key.startsWith('el:{7}:')).toBe(true);
  });

  it('spreads sessions over all shards', () => {
    const counts = new Array<number>(16).fill(0);
    for (let i = 0; i < 16_000; i += 1) {
      const shard = shardOf('p', `session-${i}`, 16);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    expect(Math.min(...counts)).toBeGreaterThan(800);
  });
});

describe('parseSessionArg', () => {
  it('splits <projectId>/<sessionId> at the first slash and rejects other forms', () => {
    expect(parseSessionArg('shop/a/b')).toEqual({ projectId: 'shop', sessionId: 'a/b' });
    expect(() => parseSessionArg('shop')).toThrow(/expected <projectId>\/<sessionId>/);
    expect(() => parseSessionArg('/s')).toThrow(/expected/);
  });
});
