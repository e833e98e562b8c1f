/**
 * The incoming event (DESIGN §1), validated with zod. Every rule has a message
 * that says what is expected; `normalizeEvent` (normalize.ts) turns zod issues into
 * ValidationIssues that name the field. `properties` is checked by toDots
 * (depth, count, key and value lengths) rather than by zod, so that keys such
 * as `__proto__` are never copied through an ordinary object.
 */
import { z } from 'zod';
import { isWellFormed, LIMITS } from './limits.js';

/** Event ids are opaque, but limited to characters that are safe in Redis members and logs. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const ISO_8601 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
/** Earliest accepted `createdAt`: older values are almost certainly a unit mistake (seconds for ms). */
export const MIN_CREATED_AT_MS = Date.UTC(2000, 0, 1);

const noNul = (s: string): boolean => !s.includes('\u0000');

function text(min: number, max: number) {
  const rule = min > 0 ? `must be a string of ${min}..${max} characters` : `must be a string of at most ${max} characters`;
  return z
    .string({ error: rule })
    .min(min, { error: rule })
    .max(max, { error: rule })
    .refine(noNul, { error: 'must not contain NUL characters' })
    .refine(isWellFormed, { error: 'must be valid Unicode (it has a lone surrogate)' });
}

const optionalText = (max: number = LIMITS.maxTextLength) => text(0, max).optional();

const coordinate = (limit: number) =>
  z
    .number({ error: `must be a number from -${limit} to ${limit}` })
    .min(-limit, { error: `must be a number from -${limit} to ${limit}` })
    .max(limit, { error: `must be a number from -${limit} to ${limit}` })
    .optional();

const createdAt = z
  .union([z.string(), z.number()], { error: 'must be an ISO-8601 string with a time zone or epoch milliseconds' })
  .superRefine((value, ctx) => {
    const parsed = parseCreatedAt(value);
    if (typeof parsed === 'string') ctx.addIssue({ code: 'custom', message: parsed });
  });

export const eventSchema = z.strictObject(
  {
    id: z
      .string({ error: 'must be a string' })
      .regex(ID_PATTERN, { error: 'must be 1..64 characters of letters, digits and . _ : -' })
      .optional(),
    projectId: text(1, 64),
    name: text(1, 200),
    createdAt,
    sessionId: optionalText(128),
    deviceId: optionalText(128),
    profileId: optionalText(128),
    path: optionalText(),
    origin: optionalText(),
    referrer: optionalText(),
    referrerName: optionalText(256),
    referrerType: optionalText(64),
    utmSource: optionalText(256),
    utmMedium: optionalText(256),
    utmCampaign: optionalText(256),
    utmTerm: optionalText(256),
    utmContent: optionalText(256),
    country: z
      .string({ error: 'must be a two-letter ISO 3166-1 country code' })
      .regex(/^([A-Za-z]{2})?$/, { error: 'must be a two-letter ISO 3166-1 country code' })
      .optional(),
    city: optionalText(256),
    region: optionalText(256),
    os: optionalText(64),
    osVersion: optionalText(64),
    browser: optionalText(64),
    browserVersion: optionalText(64),
    device: optionalText(64),
    brand: optionalText(64),
    model: optionalText(128),
    ip: optionalText(64),
    userAgent: optionalText(1024),
    latitude: coordinate(90),
    longitude: coordinate(180),
    properties: z.unknown().optional(),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? 'unknown field (put custom data in properties)' : 'must be a JSON object') },
);

export type RawEvent = z.infer<typeof eventSchema>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/**
 * An event as the ingestion API sends it (DESIGN §1), derived from the schema the
 * worker validates with: a misspelt field or a wrong type is a compile error for
 * a TypeScript caller. `properties` is any JSON object (checked by toDots).
 */
export type IncomingEvent = Simplify<Omit<z.input<typeof eventSchema>, 'properties'> & { properties?: Record<string, unknown> }>;

/**
 * Date.parse rolls impossible dates over (2026-02-30 becomes 2026-03-02), so the
 * calendar fields are checked first; returns the rule broken, if any.
 */
function impossibleDate(m: RegExpExecArray): string | undefined {
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i) => Number(m[i] ?? 0)) as [number, number, number, number, number, number];
  const daysInMonth = month >= 1 && month <= 12 ? new Date(Date.UTC(year, month, 0)).getUTCDate() : 0;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth) {
    return `must be a real calendar date (${m[1]}-${m[2]}-${m[3]} does not exist)`;
  }
  if (hour > 23 || minute > 59 || second > 59) return `must be a real time of day (${m[4]}:${m[5]}${m[6] ? `:${m[6]}` : ''} does not exist)`;
  return undefined;
}

/** Parses `createdAt` into epoch milliseconds, or returns the rule it broke. */
export function parseCreatedAt(value: string | number): number | string {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return 'epoch milliseconds must be an integer';
    ms = value;
  } else {
    const m = ISO_8601.exec(value);
    if (!m) return 'must be an ISO-8601 string with a time zone (e.g. 2026-01-31T12:00:00.000Z) or epoch milliseconds';
    const impossible = impossibleDate(m);
    if (impossible) return impossible;
    ms = Date.parse(value);
    if (Number.isNaN(ms)) return 'is not a valid date';
  }
  if (ms < MIN_CREATED_AT_MS) return 'must not be before 2000-01-01T00:00:00Z (epoch seconds instead of milliseconds?)';
  return ms;
}
