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
import { COORDINATE_LIMITS, COUNTRY_PATTERN, ID_PATTERN, MAX_VISIBLE_MS, parseCreatedAt, TEXT_RULES, type RawEvent } from './schema.js';

type Rule = (v: unknown) => boolean;

// native where the engine has it (Node 20: String.prototype.isWellFormed); the same rule as limits.ts
const wellFormed: (s: string) => boolean =
  typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === 'function' ? (s) => (s as string & { isWellFormed(): boolean }).isWellFormed() : isWellFormed;

const text =
  (min: number, max: number): Rule =>
  (v) =>
    v === undefined || (typeof v === 'string' && v.length >= min && v.length <= max && !v.includes('\u0000') && wellFormed(v));
const pattern =
  (re: RegExp): Rule =>
  (v) =>
    v === undefined || (typeof v === 'string' && re.test(v));
const coordinate =
  (limit: number): Rule =>
  (v) =>
    v === undefined || (typeof v === 'number' && v >= -limit && v <= limit);

/** Every field the schema knows, with its rule (createdAt is checked apart: it is required). */
const RULES = new Map<string, Rule>([
  ...Object.entries(TEXT_RULES).map(([k, [min, max]]): [string, Rule] => [k, text(min, max)]),
  ['id', pattern(ID_PATTERN)],
  ['country', pattern(COUNTRY_PATTERN)],
  ['latitude', coordinate(COORDINATE_LIMITS.latitude)],
  ['longitude', coordinate(COORDINATE_LIMITS.longitude)],
  ['visibleMs', (v) => v === undefined || (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_VISIBLE_MS)],
  ['properties', () => true],
  ['createdAt', () => true],
]);
const hasOwn = Object.prototype.hasOwnProperty;
/** The text fields that must be present (minimum length above 0). */
const REQUIRED = Object.entries(TEXT_RULES)
  .filter(([, [min]]) => min > 0)
  .map(([k]) => k);

/** createdAt in epoch ms when `input` passes every rule of eventSchema, else null (then zod names what broke). */
export function fastValidate(input: unknown): number | null {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return null;
  const o = input as Record<string, unknown>;
  // each present key once: unknown keys fail (strictObject), known ones meet their rule
  for (const key in o) {
    if (!hasOwn.call(o, key)) continue;
    const rule = RULES.get(key);
    if (rule === undefined || !rule(o[key])) return null;
  }
  // the required ones (their rules ran above when present), and createdAt
  for (const key of REQUIRED) if (o[key] === undefined) return null;
  const createdAt = o.createdAt;
  if (typeof createdAt !== 'string' && typeof createdAt !== 'number') return null;
  const ms = parseCreatedAt(createdAt);
  return typeof ms === 'number' ? ms : null;
}

/** The input as the schema's type, once fastValidate said yes. */
export const asRawEvent = (input: unknown): RawEvent => input as RawEvent;
