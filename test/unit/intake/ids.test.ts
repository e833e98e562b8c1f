import { describe, expect, it } from 'vitest';
import { deviceBucket, deviceIdFor, saltDays } from '../../../src/intake/ids.js';

const f = { userAgent: 'UA', ip: '203.0.113.7', origin: 'https://shop.example', projectId: 'shop' };

describe('deviceIdFor', () => {
  it('is 32 hex characters, the same for the same fingerprint and salt', () => {
    expect(deviceIdFor(f, 's1')).toMatch(/^[0-9a-f]{32}$/);
    expect(deviceIdFor(f, 's1')).toBe(deviceIdFor({ ...f }, 's1'));
  });

  it('changes with the salt and with every part of the fingerprint', () => {
    const base = deviceIdFor(f, 's1');
    expect(deviceIdFor(f, 's2')).not.toBe(base);
    for (const key of ['userAgent', 'ip', 'origin', 'projectId'] as const) expect(deviceIdFor({ ...f, [key]: 'other' }, 's1')).not.toBe(base);
  });

  it('does not run parts together (ab|c differs from a|bc)', () => {
    expect(deviceIdFor({ ...f, userAgent: 'ab', ip: 'c' }, 's')).not.toBe(deviceIdFor({ ...f, userAgent: 'a', ip: 'bc' }, 's'));
  });

  it('has a salt-free bucket of two hex characters', () => {
    expect(deviceBucket(f)).toMatch(/^[0-9a-f]{2}$/);
  });
});

describe('saltDays', () => {
  it("gives today's and yesterday's UTC day, also across a month and a year", () => {
    expect(saltDays(Date.UTC(2026, 11, 1, 0, 0, 1))).toEqual(['2026-12-01', '2026-11-30']);
    expect(saltDays(Date.UTC(2027, 0, 1, 23, 59))).toEqual(['2027-01-01', '2026-12-31']);
  });
});
