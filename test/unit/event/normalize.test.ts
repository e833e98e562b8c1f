import { PAYLOAD_COLUMNS, parsePayload } from '../../../src/event/columns.js';
import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../../src/errors.js';
import { parseCreatedAt } from '../../../src/event/schema.js';
import fc from 'fast-check';
import { CLAMPED_PROPERTY, formatDateTime, normalizeEvent, normalizeLine } from '../../../src/event/normalize.js';

const now = Date.UTC(2026, 10, 25, 12, 0, 0);
const opts = { receivedAtMs: now, maxFutureMs: 3_600_000 };
const base = { projectId: 'p1', name: 'screen_view', createdAt: '2026-11-25T11:59:00.000Z', sessionId: 's1' };

function reasons(input: unknown): string {
  try {
    normalizeEvent(input, opts);
  } catch (err) {
    expect(err).toBeInstanceOf(ValidationError);
    return (err as ValidationError).message;
  }
  throw new Error('expected a ValidationError');
}

describe('normalizeEvent', () => {
  it('keeps a given id and assigns a ULID when the id is absent', () => {
    expect(normalizeEvent({ ...base, id: 'evt-1' }, opts).id).toBe('evt-1');
    expect(normalizeEvent(base, opts).id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  });

  it('classifies screen_view, session_end and other events', () => {
    expect(normalizeEvent(base, opts).kind).toBe('v');
    expect(normalizeEvent({ ...base, name: 'session_end' }, opts).kind).toBe('e');
    expect(normalizeEvent({ ...base, name: 'click' }, opts).kind).toBe('o');
  });

  it('writes the row payload with flattened properties and UTC DateTime64 text', () => {
    const e = normalizeEvent({ ...base, id: 'a', createdAt: 1_790_000_000_123, properties: { cart: { n: 2 } }, country: 'de' }, opts);
    const row = parsePayload(e.payload);
    expect(e.payload.startsWith('["a","p1","screen_view","s1"')).toBe(true);
    expect(row).toMatchObject({ id: 'a', projectId: 'p1', sessionId: 's1', createdAt: '2026-09-21 14:13:20.123', country: 'DE', properties: { 'cart.n': '2' } });
    expect(JSON.parse(e.payload)).toHaveLength(PAYLOAD_COLUMNS.length); // no duration, no screenViews
  });

  it('puts every column of the payload at its PAYLOAD_COLUMNS position, and null where the event has none', () => {
    const text = ['deviceId', 'profileId', 'path', 'origin', 'referrer', 'referrerName', 'referrerType', 'utmSource', 'utmMedium', 'utmCampaign', 'utmTerm', 'utmContent', 'city', 'region', 'os', 'osVersion', 'browser', 'browserVersion', 'device', 'brand', 'model', 'ip', 'userAgent'];
    const full = { ...base, id: 'e-1', country: 'fr', latitude: 48.85, longitude: 2.35, properties: { a: 1 }, ...Object.fromEntries(text.map((c) => [c, `${c}-value`])) };
    const values = JSON.parse(normalizeEvent(full, opts).payload) as unknown[];
    const expected: Record<string, unknown> = { ...full, createdAt: '2026-11-25 11:59:00.000', timestamp: '2026-11-25 12:00:00.000', country: 'FR', properties: { a: '1' } };
    PAYLOAD_COLUMNS.forEach((column, i) => expect([column, values[i]]).toEqual([column, expected[column]]));
    const bare = JSON.parse(normalizeEvent({ projectId: 'p1', name: 'click', createdAt: base.createdAt, id: 'e-2' }, opts).payload) as unknown[];
    PAYLOAD_COLUMNS.forEach((column, i) => {
      if (!['id', 'projectId', 'name', 'sessionId', 'createdAt', 'timestamp', 'properties'].includes(column)) expect([column, bare[i]]).toEqual([column, null]);
    });
  });

  it('gives the session facts of the sessions row from the event, country upper-cased, and none without a session', () => {
    const e = normalizeEvent({ ...base, country: 'de', os: 'Linux', utmSource: 'news', path: '/x' }, opts);
    expect(e.sessionFacts).toEqual({ projectId: 'p1', country: 'DE', os: 'Linux', utmSource: 'news' });
    expect(normalizeEvent({ ...base, sessionId: undefined, os: 'Linux' }, opts).sessionFacts).toEqual({});
  });

  it('formats DateTime64 text as the ISO time in UTC, for any instant from 1970 to 9999 and in any order', () => {
    const iso = (ms: number) => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 253_402_300_799_999 }), { minLength: 1, maxLength: 20 }), (list) => {
        for (const ms of list) expect(formatDateTime(ms)).toBe(iso(ms));
      }),
      { numRuns: 2_000 },
    );
    for (const ms of [0, 86_399_999, 86_400_000, Date.UTC(2024, 1, 29, 23, 59, 59, 999), 253_402_300_799_999]) expect(formatDateTime(ms)).toBe(iso(ms));
  });

  it('takes a calendar day exactly when the calendar has it, century leap rules included', () => {
    const pad = (n: number) => String(n).padStart(2, '0');
    for (const year of [2000, 2023, 2024, 2100, 2400])
      for (let month = 1; month <= 12; month += 1)
        for (let day = 27; day <= 31; day += 1) {
          const exists = new Date(Date.UTC(year, month - 1, day)).getUTCDate() === day;
          const ms = parseCreatedAt(`${year}-${pad(month)}-${pad(day)}T00:00:00Z`);
          expect([year, month, day, typeof ms]).toEqual([year, month, day, exists ? 'number' : 'string']);
        }
  });

  it('accepts a leap day in a leap year', () => {
    expect(normalizeEvent({ ...base, createdAt: '2024-02-29T10:00:00Z' }, opts).createdAtMs).toBe(Date.UTC(2024, 1, 29, 10));
  });

  it('rejects epoch milliseconds beyond what a date holds with a ValidationError naming createdAt, for events and NDJSON lines', () => {
    expect(reasons({ ...base, createdAt: 8_640_000_000_000_001 })).toMatch(/^createdAt: must be a time a date can hold/);
    expect(reasons({ ...base, createdAt: 2 ** 53 - 1 })).toMatch(/^createdAt: /);
    expect(() => normalizeLine(JSON.stringify({ ...base, createdAt: 8_640_000_000_000_001 }), opts)).toThrow(ValidationError);
    // the largest that is a date is clamped like any other far-future time
    expect(normalizeEvent({ ...base, createdAt: 8_640_000_000_000_000 }, opts)).toMatchObject({ createdAtMs: now, clamped: true });
  });

  it('rejects visibleMs out of its range or on an event that is no page_hidden / page_visible, and keeps a slice as sliceMs', () => {
    expect(reasons({ ...base, name: 'page_hidden', visibleMs: -1 })).toMatch(/^visibleMs: must be a whole number of milliseconds/);
    expect(reasons({ ...base, name: 'page_hidden', visibleMs: 1.5 })).toMatch(/^visibleMs: /);
    expect(reasons({ ...base, name: 'click', visibleMs: 10 })).toBe('visibleMs: only page_hidden and page_visible events carry it (got "click")');
    expect(normalizeEvent({ ...base, name: 'page_visible', visibleMs: 1_200 }, opts)).toMatchObject({ kind: 's', sliceMs: 1_200 });
  });

  it('refuses NUL in property keys and values, naming the property', () => {
    expect(reasons({ ...base, properties: { 'a\u0000b': 'x' } })).toMatch(/^properties\.a\\u0000b: must not contain NUL characters/);
    expect(reasons({ ...base, properties: { list: ['ok', 'no\u0000'] } })).toMatch(/^properties\.list\.1: must not contain NUL characters/);
  });

  it('clamps a createdAt far in the future to the receive time and flags it', () => {
    const e = normalizeEvent({ ...base, createdAt: '2030-01-01T00:00:00Z' }, opts);
    expect(e.clamped).toBe(true);
    expect(e.createdAtMs).toBe(now);
    expect((parsePayload(e.payload) as { properties: Record<string, string> }).properties[CLAMPED_PROPERTY]).toBe('2030-01-01T00:00:00.000Z');
  });

  it.each([
    [{ ...base, projectId: '' }, 'projectId: must be a string of 1..64 characters'],
    [{ ...base, projectId: 7 }, 'projectId: must be a string of 1..64 characters'],
    [{ ...base, name: undefined }, 'name: must be a string of 1..200 characters'],
    [{ ...base, createdAt: '2026-11-25 11:00' }, 'createdAt: must be an ISO-8601 string with a time zone'],
    [{ ...base, createdAt: 1_700_000_000 }, 'createdAt: must not be before 2000-01-01'],
    [{ ...base, createdAt: '2026-02-30T00:00:00Z' }, 'createdAt: must be a real calendar date (2026-02-30 does not exist)'],
    [{ ...base, createdAt: '2025-02-29T10:00:00Z' }, 'createdAt: must be a real calendar date (2025-02-29 does not exist)'],
    [{ ...base, createdAt: '2026-13-01T10:00:00Z' }, 'createdAt: must be a real calendar date (2026-13-01 does not exist)'],
    [{ ...base, createdAt: '2026-04-31T10:00:00+02:00' }, 'createdAt: must be a real calendar date (2026-04-31 does not exist)'],
    [{ ...base, createdAt: '2026-04-30T24:00:00Z' }, 'createdAt: must be a real time of day (24:00:00 does not exist)'],
    [{ ...base, createdAt: true }, 'createdAt: must be an ISO-8601 string with a time zone or epoch milliseconds'],
    [{ ...base, id: 'has space' }, 'id: must be 1..64 characters of letters, digits'],
    [{ ...base, latitude: 91 }, 'latitude: must be a number from -90 to 90'],
    [{ ...base, country: 'Germany' }, 'country: must be a two-letter ISO 3166-1 country code'],
    [{ ...base, path: 'a\u0000b' }, 'path: must not contain NUL characters'],
    [{ ...base, path: '/a\uD800b' }, 'path: must be valid Unicode (it has a lone surrogate)'],
    [{ ...base, properties: { plan: 'pro\uDC00' } }, 'properties.plan: key and value must be valid Unicode'],
    [{ ...base, properties: [1] }, 'properties: must be a JSON object'],
    [{ ...base, sessionID: 'typo' }, 'sessionID: unknown field'],
    [[1, 2], 'event: must be a JSON object'],
  ])('rejects %j naming the field and the rule', (input, expected) => {
    expect(reasons(input)).toContain(expected);
  });

  it('reports every broken field at once', () => {
    const message = reasons({ projectId: '', name: '', createdAt: 'x' });
    expect(message).toContain('projectId:');
    expect(message).toContain('name:');
    expect(message).toContain('createdAt:');
  });
});

describe('normalizeLine', () => {
  it('rejects broken JSON with the parser message', () => {
    expect(() => normalizeLine('{"projectId":', opts)).toThrow(/event: must be valid JSON/);
  });

  it('rejects a line over the byte limit before parsing it', () => {
    expect(() => normalizeLine(`{"x":"${'a'.repeat(70_000)}"}`, opts)).toThrow(/event: must be at most 65536 bytes/);
  });
});
