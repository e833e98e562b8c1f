import { describe, expect, it } from 'vitest';
import type { RequestContext } from '../../../src/intake/enrich.js';
import { createdAtFrom } from '../../../src/intake/enrich.js';
import { nativeEvent, ndjsonItems } from '../../../src/intake/events.js';
import { parseTrackBody, TrackError, trackEvent } from '../../../src/intake/track.js';

const ctx: RequestContext = {
  receivedAtMs: Date.UTC(2026, 11, 1, 12),
  userAgent: 'UA',
  ip: '203.0.113.7',
  origin: 'https://shop.example',
  device: { os: 'Linux', browser: 'Chrome', device: 'desktop' },
  geo: { country: 'KR' },
};
const ids = { deviceId: 'd1', sessionId: 's1' };

const rule = (body: unknown): string => {
  try {
    parseTrackBody(body);
    return 'accepted';
  } catch (err) {
    if (err instanceof TrackError) return err.message;
    throw err;
  }
};

describe('parseTrackBody', () => {
  it.each([
    [null, 'body: must be a JSON object'],
    [{ payload: {} }, 'type: must be a string'],
    [{ type: 'increment', payload: {} }, 'type: "increment" is not supported: profile counters are not stored'],
    [{ type: 'replay', payload: {} }, 'type: "replay" is not supported: session replay'],
    [{ type: 'teleport', payload: {} }, 'type: "teleport" is not a type: expected track or identify'],
    [{ type: 'track', payload: 'x' }, 'payload: must be a JSON object'],
    [{ type: 'track', payload: { name: '' } }, 'payload.name: must be a non-empty string'],
    [{ type: 'track', payload: { name: 'x', properties: [1] } }, 'payload.properties: must be a JSON object'],
    [{ type: 'track', payload: { name: 'x', groups: [1] } }, 'payload.groups: must be a list of strings'],
    [{ type: 'identify', payload: {} }, 'payload.profileId: is required for identify'],
    [{ type: 'identify', payload: { profileId: 'u1', email: 5 } }, 'payload.email: must be a string'],
  ])('rejects %j: %s', (body, expected) => {
    expect(rule(body)).toContain(expected);
  });
});

describe('trackEvent', () => {
  it('derives page, UTM and referrer fields, consumes the SDK keys and keeps __title', () => {
    const body = parseTrackBody({
      type: 'track',
      payload: {
        name: 'screen_view',
        properties: { __path: 'https://shop.example/hats?utm_source=news', __referrer: 'https://www.google.com/', __title: 'Hats', __timestamp: '2026-12-01T11:59:00.000Z', plan: 'pro' },
      },
    });
    expect(trackEvent(body, 'shop', ctx, ids, 3_600_000)).toEqual({
      projectId: 'shop',
      name: 'screen_view',
      createdAt: Date.UTC(2026, 11, 1, 11, 59),
      deviceId: 'd1',
      sessionId: 's1',
      origin: 'https://shop.example',
      path: '/hats',
      utmSource: 'news',
      referrer: 'https://www.google.com/',
      referrerName: 'Google',
      referrerType: 'search',
      os: 'Linux',
      browser: 'Chrome',
      device: 'desktop',
      country: 'KR',
      ip: '203.0.113.7',
      userAgent: 'UA',
      properties: { __title: 'Hats', plan: 'pro' },
    });
  });

  it('makes an identify event with the traits as properties and no session', () => {
    const body = parseTrackBody({ type: 'identify', payload: { profileId: 'u1', firstName: 'Ada', email: 'ada@example.com', properties: { plan: 'pro' } } });
    const event = trackEvent(body, 'shop', ctx, ids, 3_600_000);
    expect(event).toMatchObject({ name: 'identify', profileId: 'u1', deviceId: 'd1', properties: { plan: 'pro', firstName: 'Ada', email: 'ada@example.com' } });
    expect(event.sessionId).toBeUndefined();
  });

  it('keeps __proto__ keys of properties as data', () => {
    const body = parseTrackBody(JSON.parse('{"type":"track","payload":{"name":"x","properties":{"__proto__":{"polluted":1}}}}'));
    const event = trackEvent(body, 'shop', ctx, ids, 3_600_000);
    expect(Object.keys(event.properties ?? {})).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('createdAtFrom', () => {
  const now = Date.UTC(2026, 11, 1, 12);
  it('takes a valid __timestamp, and the receive time for a missing, broken or far-future one', () => {
    expect(createdAtFrom('2026-12-01T11:00:00Z', now, 60_000)).toBe(Date.UTC(2026, 11, 1, 11));
    expect(createdAtFrom(undefined, now, 60_000)).toBe(now);
    expect(createdAtFrom('soon', now, 60_000)).toBe(now);
    expect(createdAtFrom('2026-12-01T13:00:00Z', now, 60_000)).toBe(now);
  });
});

describe('nativeEvent', () => {
  it("fills in the client's project and derives device and referrer fields, given fields winning", () => {
    const ua = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1';
    const r = nativeEvent({ value: { name: 'x', createdAt: 1, userAgent: ua, referrer: 'https://t.co/x', referrerName: 'Mine' } }, 'shop');
    expect(r).toMatchObject({ event: { projectId: 'shop', os: 'iOS', device: 'mobile', referrerName: 'Mine', referrerType: 'social' } });
  });

  it("rejects another project's id and items that are not objects", () => {
    expect(nativeEvent({ value: { projectId: 'other', name: 'x' } }, 'shop')).toEqual({ error: 'projectId: must be "shop" (the project of this client) or left out' });
    expect(nativeEvent({ value: [1] }, 'shop')).toEqual({ error: 'event: must be a JSON object' });
  });

  it('reads NDJSON lines, skipping blank ones and naming broken ones', () => {
    const items = ndjsonItems('{"a":1}\n\n{broken\n');
    expect(items[0]).toEqual({ value: { a: 1 } });
    expect(items[1]).toMatchObject({ error: expect.stringContaining('event: must be valid JSON') });
    expect(items).toHaveLength(2);
  });
});
