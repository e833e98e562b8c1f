/**
 * The incoming event (DESIGN §1), validated with zod. Every rule has a message
 * that says what is expected; `validateEvent` turns zod issues into
 * ValidationIssues that name the field. `properties` is checked by toDots
 * (depth, count, key and value lengths) rather than by zod, so that keys such
 * as `__proto__` are never copied through an ordinary object.
 */
import { z } from 'zod';
import { isWellFormed, LIMITS } from './limits.ts';

/** Event ids are opaque, but limited to characters that are safe in Redis members and logs. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;
const ISO_8601 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/;
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

/** Parses `createdAt` into epoch milliseconds, or returns the rule it broke. */
export function parseCreatedAt(value: string | number): number | string {
  let ms: number;
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return 'epoch milliseconds must be an integer';
    ms = value;
  } else {
    if (!ISO_8601.test(value)) return 'must be an ISO-8601 string with a time zone (e.g. 2026-01-31T12:00:00.000Z) or epoch milliseconds';
    ms = Date.parse(value);
    if (Number.isNaN(ms)) return 'is not a valid date';
  }
  if (ms < MIN_CREATED_AT_MS) return 'must not be before 2000-01-01T00:00:00Z (epoch seconds instead of milliseconds?)';
  return ms;
}
