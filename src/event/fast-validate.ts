/**
 * The worker's fast path for valid events. zod (schema.ts) takes ~8 µs per
 * event and allocates its result; this check reads the same rules (TEXT_RULES,
 * ID_PATTERN, COUNTRY_PATTERN, COORDINATE_LIMITS, parseCreatedAt) and only says
 * yes or no, in ~1 µs. When it says no, normalizeEvent asks zod, whose issues
 * name the field and the rule, so messages are the same as before. It may
 * only say yes where zod does: test/unit/event/fast-validate.test.ts checks
 * that on generated valid and broken events.
 */
import { isWellFormed } from './limits.js';
import { COORDINATE_LIMITS, COUNTRY_PATTERN, ID_PATTERN, parseCreatedAt, TEXT_RULES, type RawEvent } from './schema.js';

const TEXT = Object.entries(TEXT_RULES) as [keyof typeof TEXT_RULES, readonly [number, number]][];
const OTHER_KEYS = ['id', 'createdAt', 'country', 'latitude', 'longitude', 'properties'] as const;
const KNOWN = new Set<string>([...TEXT.map(([k]) => k), ...OTHER_KEYS]);
const hasOwn = Object.prototype.hasOwnProperty;

function goodText(v: unknown, min: number, max: number, required: boolean): boolean {
  if (v === undefined) return !required;
  return typeof v === 'string' && v.length >= min && v.length <= max && !v.includes('\u0000') && isWellFormed(v);
}

const goodCoordinate = (v: unknown, limit: number): boolean => v === undefined || (typeof v === 'number' && v >= -limit && v <= limit);

/** createdAt in epoch ms when `input` passes every rule of eventSchema, else null (then zod names what broke). */
export function fastValidate(input: unknown): number | null {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return null;
  const o = input as Record<string, unknown>;
  for (const key in o) if (hasOwn.call(o, key) && !KNOWN.has(key)) return null;
  // strictObject also rejects unknown keys zod sees that for..in does not (symbols are ignored by both)
  for (const [key, [min, max]] of TEXT) if (!goodText(o[key], min, max, min > 0)) return null;
  const id = o.id;
  if (id !== undefined && (typeof id !== 'string' || !ID_PATTERN.test(id))) return null;
  const country = o.country;
  if (country !== undefined && (typeof country !== 'string' || !COUNTRY_PATTERN.test(country))) return null;
  if (!goodCoordinate(o.latitude, COORDINATE_LIMITS.latitude) || !goodCoordinate(o.longitude, COORDINATE_LIMITS.longitude)) return null;
  const createdAt = o.createdAt;
  if (typeof createdAt !== 'string' && typeof createdAt !== 'number') return null;
  const ms = parseCreatedAt(createdAt);
  return typeof ms === 'number' ? ms : null;
}

/** The input as the schema's type, once fastValidate said yes. */
export const asRawEvent = (input: unknown): RawEvent => input as RawEvent;
