/**
 * `normalizeEvent` turns an incoming event into what the buffer holds: the
 * ordering fields it needs (`id`, `createdAtMs`, `kind`, session) and an opaque
 * `payload`, the ClickHouse row as a positional JSON array without `duration`
 * and `screenViews` (columns.ts). Lua never decodes the payload; it prepends
 * those two values when it emits the row (row() in lua/includes/rows.lua,
 * called by lua/sweep-4.lua; lua/ingest-4.lua stores it).
 */
import { newUlid as ulid } from './ulid.js';
import { ValidationError, type ValidationIssue } from '../errors.js';
import { DotsError, toDots, type DottedProperties } from './dots.js';
import { LIMITS } from './limits.js';
import type { PAYLOAD_COLUMNS } from './columns.js';
import { asRawEvent, fastValidate } from './fast-validate.js';
import { eventSchema, parseCreatedAt, VISIBILITY_EVENTS, type RawEvent } from './schema.js';

/**
 * How the buffer treats an event: a screen view or a session end (the
 * boundaries), a page_hidden or page_visible (engaged time, E1), or anything
 * else.
 */
export type EventKind = 'v' | 'e' | 'h' | 's' | 'o';

export interface NormalizedEvent {
  id: string;
  projectId: string;
  /** Empty when the event has no session; such events are never held. */
  sessionId: string;
  name: string;
  kind: EventKind;
  createdAtMs: number;
  /** `createdAt` was in the future beyond the allowed bound and was clamped to the receive time. */
  clamped: boolean;
  /** The page path ('' when absent): entry and exit path of the sessions row. */
  path: string;
  /** A page_hidden / page_visible event's client-measured engaged slice (`visibleMs`), ms. */
  sliceMs?: number;
  /** This event's values of the sessions-row columns that come from a session's earliest event. */
  sessionFacts: Record<string, unknown>;
  /** The ClickHouse row as a positional JSON array (columns.ts PAYLOAD_COLUMNS), without duration and screenViews. */
  payload: string;
}

export interface NormalizeOptions {
  /** Receive time (epoch ms): the `timestamp` column and the clamp target. */
  receivedAtMs: number;
  /** How far in the future createdAt may be before it is clamped. */
  maxFutureMs: number;
}

/** Columns of the sessions table taken from the session's earliest event. */
const SESSION_FACT_COLUMNS = [
  'projectId', 'deviceId', 'profileId', 'referrer', 'referrerName', 'referrerType', 'utmSource', 'utmMedium',
  'utmCampaign', 'utmTerm', 'utmContent', 'country', 'city', 'region', 'os', 'osVersion', 'browser',
  'browserVersion', 'device', 'brand', 'model',
] as const;

/** The property set on a clamped event, holding the original createdAt. */
export const CLAMPED_PROPERTY = '$clampedCreatedAt';
/** The property holding a visibility event's `visibleMs`. */
export const VISIBLE_MS_PROPERTY = '$visibleMs';

const DAY_MS = 86_400_000;
/** The first instant of year 10000: past it, ISO text has more than four year digits. */
const YEAR_10000_MS = 253_402_300_800_000;
const pad2 = (n: number): string => (n < 10 ? `0${n}` : String(n));
const pad3 = (n: number): string => (n < 10 ? `00${n}` : n < 100 ? `0${n}` : String(n));

/**
 * ClickHouse DateTime64(3) text form, always UTC (`2026-10-01 12:00:00.000`).
 * The date part is kept for the last day formatted (a job's events share their
 * days) and the time of day is arithmetic, instead of a Date and its ISO text
 * per value; instants outside years 0000..9999 go through Date as before.
 */
export function formatDateTime(ms: number): string {
  if (!(ms >= 0 && ms < YEAR_10000_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString().slice(0, 23).replace('T', ' ');
  const day = Math.floor(ms / DAY_MS);
  if (day !== lastDay.day) {
    lastDay.day = day;
    lastDay.text = new Date(day * DAY_MS).toISOString().slice(0, 11).replace('T', ' ');
  }
  let rest = ms - day * DAY_MS;
  const milli = rest % 1000;
  rest = (rest - milli) / 1000;
  const second = rest % 60;
  rest = (rest - second) / 60;
  const minute = rest % 60;
  return `${lastDay.text}${pad2((rest - minute) / 60)}:${pad2(minute)}:${pad2(second)}.${pad3(milli)}`;
}
const lastDay = { day: Number.NaN, text: '' };

/** formatDateTime of a receive time: every event of a job has the same one, formatted once. */
function formatReceived(ms: number): string {
  if (ms !== lastReceived.ms) {
    lastReceived.ms = ms;
    lastReceived.text = formatDateTime(ms);
  }
  return lastReceived.text;
}
const lastReceived = { ms: Number.NaN, text: '' };

const KINDS: Readonly<Record<string, EventKind>> = { screen_view: 'v', session_end: 'e', page_hidden: 'h', page_visible: 's' };

/** The buffer's kind of an event name: screen_view 'v', session_end 'e', page_hidden 'h', page_visible 's', anything else 'o'. */
export function kindOf(name: string): EventKind {
  return KINDS[name] ?? 'o';
}

/** Whether events of this kind are held until their figures are settled (screen_view, session_end). */
export const isHeldKind = (kind: EventKind): boolean => kind === 'v' || kind === 'e';

/** Validates one event and normalizes it; throws ValidationError naming every broken field. */
export function normalizeEvent(input: unknown, options: NormalizeOptions, assignId: () => string = ulid): NormalizedEvent {
  // the fast path says yes for a valid event; only for the others zod runs, to name what broke
  const fast = fastValidate(input);
  const parsed = fast === null ? eventSchema.safeParse(input) : undefined;
  const issues: ValidationIssue[] = [];
  if (parsed && !parsed.success) {
    for (const issue of parsed.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) issues.push({ field: key, rule: 'unknown field (put custom data in properties)' });
      } else {
        issues.push({ field: issue.path.length > 0 ? issue.path.join('.') : 'event', rule: issue.message });
      }
    }
  }
  // properties are checked by toDots (not zod), also when other fields failed, so every problem is reported at once
  const rawProperties = input !== null && typeof input === 'object' ? (input as { properties?: unknown }).properties : undefined;
  let properties: DottedProperties = Object.create(null) as DottedProperties;
  if (rawProperties !== undefined && rawProperties !== null) {
    try {
      properties = toDots(rawProperties, 'properties', LIMITS);
    } catch (err) {
      if (!(err instanceof DotsError)) throw err;
      issues.push({ field: err.field, rule: err.rule });
    }
  }
  if ((parsed && !parsed.success) || issues.length > 0) throw new ValidationError(issues);
  const raw = parsed?.success ? parsed.data : asRawEvent(input);
  if (raw.visibleMs !== undefined && !VISIBILITY_EVENTS.includes(raw.name)) {
    throw new ValidationError([{ field: 'visibleMs', rule: `only page_hidden and page_visible events carry it (got ${JSON.stringify(raw.name)})` }]);
  }
  const created = fast ?? parseCreatedAt(raw.createdAt);
  if (typeof created === 'string') throw new ValidationError([{ field: 'createdAt', rule: created }]);

  let createdAtMs = created;
  let clamped = false;
  if (createdAtMs > options.receivedAtMs + options.maxFutureMs) {
    properties[CLAMPED_PROPERTY] = new Date(createdAtMs).toISOString();
    createdAtMs = options.receivedAtMs;
    clamped = true;
  }

  const id = raw.id ?? assignId();
  const country = raw.country ? raw.country.toUpperCase() : undefined;
  // the slice is kept with the event's properties too, as it was measured
  if (raw.visibleMs !== undefined) properties[VISIBLE_MS_PROPERTY] = String(raw.visibleMs);
  const event: NormalizedEvent = {
    id,
    projectId: raw.projectId,
    sessionId: raw.sessionId ?? '',
    name: raw.name,
    kind: kindOf(raw.name),
    createdAtMs,
    clamped,
    path: raw.path ?? '',
    // read once per session and call (the facts of its earliest event), so built only when read,
    // from the caller's input: callers (parseJob, replay, the intake) never change an event after
    // normalising it
    get sessionFacts() {
      return raw.sessionId ? sessionFactsOf(raw, country) : {};
    },
    payload: payloadJson(raw, id, formatDateTime(createdAtMs), formatReceived(options.receivedAtMs), country, properties),
  };
  if (raw.visibleMs !== undefined) event.sliceMs = raw.visibleMs;
  return event;
}

/**
 * The positional payload, written as one array literal in PAYLOAD_COLUMNS
 * order (columns.ts; test/unit/event/normalize.test.ts checks every position)
 * rather than an object by column that payloadOf() maps: no object with a
 * per-event set of keys, no lookups by name. Absent values are null.
 */
function payloadJson(raw: RawEvent, id: string, createdAt: string, timestamp: string, country: string | undefined, properties: DottedProperties): string {
  return JSON.stringify([
    id, raw.projectId, raw.name, raw.sessionId ?? '', createdAt, timestamp,
    raw.deviceId ?? null, raw.profileId ?? null, raw.path ?? null, raw.origin ?? null, raw.referrer ?? null, raw.referrerName ?? null, raw.referrerType ?? null,
    raw.utmSource ?? null, raw.utmMedium ?? null, raw.utmCampaign ?? null, raw.utmTerm ?? null, raw.utmContent ?? null, country ?? null, raw.city ?? null, raw.region ?? null,
    raw.latitude ?? null, raw.longitude ?? null, raw.os ?? null, raw.osVersion ?? null, raw.browser ?? null, raw.browserVersion ?? null, raw.device ?? null, raw.brand ?? null, raw.model ?? null,
    raw.ip ?? null, raw.userAgent ?? null, properties,
  ] as const satisfies { readonly length: typeof PAYLOAD_COLUMNS.length });
}

/** The sessions-row columns this event would give its session as its earliest event. */
function sessionFactsOf(raw: RawEvent, country: string | undefined): Record<string, unknown> {
  const facts: Record<string, unknown> = {};
  for (const column of SESSION_FACT_COLUMNS) {
    const value = column === 'country' ? country : raw[column];
    if (value !== undefined) facts[column] = value;
  }
  return facts;
}

/** Parses and normalizes one NDJSON line, enforcing the byte limit before parsing. */
export function normalizeLine(line: string, options: NormalizeOptions, assignId?: () => string): NormalizedEvent {
  if (Buffer.byteLength(line, 'utf8') > LIMITS.maxEventBytes) {
    throw new ValidationError([{ field: 'event', rule: `must be at most ${LIMITS.maxEventBytes} bytes of JSON` }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (err) {
    throw new ValidationError([{ field: 'event', rule: `must be valid JSON (${(err as Error).message})` }]);
  }
  return normalizeEvent(value, options, assignId);
}
