import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastValidate } from '../../../src/event/fast-validate.js';
import { eventSchema, TEXT_RULES } from '../../../src/event/schema.js';
import { generateEvents } from '../../../src/generate/model.js';

const valid = generateEvents({ sessions: 40, seed: 7 });
const fields = [...Object.keys(eventSchema.shape), 'unknownField', '__proto__'];
const tricky: unknown[] = [
  undefined, null, '', 'a', 'x'.repeat(64), 'x'.repeat(65), 'x'.repeat(129), 'x'.repeat(257), 'x'.repeat(1025), 'x'.repeat(4097),
  'a\u0000b', '\uD800', 'ok\uDC00', '😀', 'DE', 'de', 'D', 'DEU', '12', 0, -0, 1, -91, 90, 90.0001, -180, 181, Number.NaN, Number.POSITIVE_INFINITY,
  1_790_000_000_000, 1.5, 946_684_799_999, 86_400_000, 86_400_001, '2026-02-30T00:00:00Z', '2026-10-01T10:00:00Z', '2026-10-01T10:00:00', 'yesterday',
  true, [], ['a'], {}, { a: 1 }, 'id with space', 'id,comma', 'ok.id:1_-', 'x'.repeat(200), 'x'.repeat(201),
];

describe('fastValidate', () => {
  it('knows every field of the schema', () => {
    const known = new Set([...Object.keys(TEXT_RULES), 'id', 'createdAt', 'country', 'latitude', 'longitude', 'visibleMs', 'properties']);
    expect(Object.keys(eventSchema.shape).filter((k) => !known.has(k))).toEqual([]);
  });

  it('says yes exactly where zod does, on generated events with fields broken, removed or added', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.array(fc.tuple(fc.constantFrom(...fields), fc.constantFrom(...tricky), fc.boolean()), { maxLength: 3 }),
        (event, changes) => {
          const input: Record<string, unknown> = { ...event };
          for (const [field, value, remove] of changes) {
            if (remove) delete input[field];
            else Object.defineProperty(input, field, { value, enumerable: true, configurable: true, writable: true });
          }
          expect(fastValidate(input) !== null).toBe(eventSchema.safeParse(input).success);
        },
      ),
      { numRuns: 5_000 },
    );
  });

  it('says yes to the generated events and gives their createdAt', () => {
    for (const e of valid) expect(fastValidate(e)).toBe(Date.parse(e.createdAt));
  });

  it.each([null, 'text', [], 42])('says no to %j', (input) => {
    expect(fastValidate(input)).toBeNull();
  });
});
