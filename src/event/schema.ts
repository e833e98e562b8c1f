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
export const COUNTRY_PATTERN = /^([A-Za-z]{2})?$/;
/** The bounds of latitude and longitude. */
export const COORDINATE_LIMITS = { latitude: 90, longitude: 180 } as const;
/** Earliest accepted `createdAt`: older values are almost certainly a unit mistake (seconds for ms). */
export const MIN_CREATED_AT_MS = Date.UTC(2000, 0, 1);
/** The latest instant a JavaScript date holds (+275760-09-13): epoch ms beyond it are no time at all. */
export const MAX_CREATED_AT_MS = 8_640_000_000_000_000;
/** The largest client-measured engaged slice a visibility event may carry (`visibleMs`), ms: one day. */
export const MAX_VISIBLE_MS = 86_400_000;
/** The only events that may carry `visibleMs`. */
export const VISIBILITY_EVENTS: readonly string[] = ['page_hidden', 'page_visible'];

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

/**
 * The text fields and their lengths in characters (min, max): the zod schema
 * below and the fast path of the worker (fast-validate.ts) both read them.
 */
export const TEXT_RULES = {
  projectId: [1, 64],
  name: [1, 200],
  sessionId: [0, 128],
  deviceId: [0, 128],
  profileId: [0, 128],
  path: [0, LIMITS.maxTextLength],
  origin: [0, LIMITS.maxTextLength],
  referrer: [0, LIMITS.maxTextLength],
  referrerName: [0, 256],
  referrerType: [0, 64],
  utmSource: [0, 256],
  utmMedium: [0, 256],
  utmCampaign: [0, 256],
  utmTerm: [0, 256],
  utmContent: [0, 256],
  city: [0, 256],
  region: [0, 256],
  os: [0, 64],
  osVersion: [0, 64],
  browser: [0, 64],
  browserVersion: [0, 64],
  device: [0, 64],
  brand: [0, 64],
  model: [0, 128],
  ip: [0, 64],
  userAgent: [0, 1024],
} as const satisfies Record<string, readonly [number, number]>;

export const eventSchema = z.strictObject(
  {
    id: z
      .string({ error: 'must be a string' })
      .regex(ID_PATTERN, { error: 'must be 1..64 characters of letters, digits and . _ : -' })
      .optional(),
    projectId: text(...TEXT_RULES.projectId),
    name: text(...TEXT_RULES.name),
    createdAt,
    sessionId: optionalText(TEXT_RULES.sessionId[1]),
    deviceId: optionalText(TEXT_RULES.deviceId[1]),
    profileId: optionalText(TEXT_RULES.profileId[1]),
    path: optionalText(TEXT_RULES.path[1]),
    origin: optionalText(TEXT_RULES.origin[1]),
    referrer: optionalText(TEXT_RULES.referrer[1]),
    referrerName: optionalText(TEXT_RULES.referrerName[1]),
    referrerType: optionalText(TEXT_RULES.referrerType[1]),
    utmSource: optionalText(TEXT_RULES.utmSource[1]),
    utmMedium: optionalText(TEXT_RULES.utmMedium[1]),
    utmCampaign: optionalText(TEXT_RULES.utmCampaign[1]),
    utmTerm: optionalText(TEXT_RULES.utmTerm[1]),
    utmContent: optionalText(TEXT_RULES.utmContent[1]),
    country: z
      .string({ error: 'must be a two-letter ISO 3166-1 country code' })
      .regex(COUNTRY_PATTERN, { error: 'must be a two-letter ISO 3166-1 country code' })
      .optional(),
    city: optionalText(TEXT_RULES.city[1]),
    region: optionalText(TEXT_RULES.region[1]),
    os: optionalText(TEXT_RULES.os[1]),
    osVersion: optionalText(TEXT_RULES.osVersion[1]),
    browser: optionalText(TEXT_RULES.browser[1]),
    browserVersion: optionalText(TEXT_RULES.browserVersion[1]),
    device: optionalText(TEXT_RULES.device[1]),
    brand: optionalText(TEXT_RULES.brand[1]),
    model: optionalText(TEXT_RULES.model[1]),
    ip: optionalText(TEXT_RULES.ip[1]),
    userAgent: optionalText(TEXT_RULES.userAgent[1]),
    latitude: coordinate(COORDINATE_LIMITS.latitude),
    longitude: coordinate(COORDINATE_LIMITS.longitude),
    visibleMs: z
      .number({ error: `must be a whole number of milliseconds from 0 to ${MAX_VISIBLE_MS}` })
      .int({ error: `must be a whole number of milliseconds from 0 to ${MAX_VISIBLE_MS}` })
      .min(0, { error: `must be a whole number of milliseconds from 0 to ${MAX_VISIBLE_MS}` })
      .max(MAX_VISIBLE_MS, { error: `must be a whole number of milliseconds from 0 to ${MAX_VISIBLE_MS}` })
      .optional(),
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
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) {
    return `must be a real calendar date (${m[1]}-${m[2]}-${m[3]} does not exist)`;
  }
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6] ?? 0) > 59) return `must be a real time of day (${m[4]}:${m[5]}${m[6] ? `:${m[6]}` : ''} does not exist)`;
  return undefined;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] as const;
/** Days in a month (1..12) of the proleptic Gregorian calendar, as Date counts them. */
function daysInMonth(year: number, month: number): number {
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  return month === 2 && leap ? 29 : (MONTH_DAYS[month - 1] as number);
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
  if (ms > MAX_CREATED_AT_MS) return `must be a time a date can hold (epoch milliseconds at most ${MAX_CREATED_AT_MS}; microseconds or nanoseconds instead of milliseconds?)`;
  return ms;
}
