import { decodeTime, isValid } from 'ulid';
import { describe, expect, it } from 'vitest';
import { newUlid } from '../../../src/event/ulid.js';

describe('newUlid', () => {
  it('gives valid ULIDs carrying the time, all different', () => {
    const ids = Array.from({ length: 10_000 }, () => newUlid(1_790_000_000_000));
    expect(ids.every(isValid)).toBe(true);
    expect(decodeTime(ids[0] as string)).toBe(1_790_000_000_000);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('spreads the random characters evenly over the alphabet (pool refills included)', () => {
    const counts = new Map<string, number>();
    for (let i = 0; i < 4_000; i += 1) for (const c of newUlid().slice(10)) counts.set(c, (counts.get(c) ?? 0) + 1);
    expect(counts.size).toBe(32);
    const expected = (4_000 * 16) / 32;
    for (const n of counts.values()) expect(Math.abs(n - expected)).toBeLessThan(expected * 0.2);
  });
});
