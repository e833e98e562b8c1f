/**
 * The positional layout of an events row. Rows are held in Redis and sent to
 * ClickHouse as JSON arrays (`JSONCompactEachRow` with an explicit column
 * list), not as objects: the column names are neither stored for every held
 * row nor parsed by ClickHouse for every inserted one. A value that is absent
 * is `null`, which ClickHouse turns into the column's default
 * (`input_format_null_as_default`, on by default), as it does for an omitted
 * key of JSONEachRow.
 *
 * `duration`, `screenViews` and `engagedMs` come first: the buffer's Lua
 * prepends them to the payload when it emits a row (lua/includes/rows.lua,
 * row()). Rows of release 0.1.0 (before engagedMs) have the first two only,
 * and rows and payloads held by releases before 0.5 are JSON objects; both
 * are still emitted and inserted (flush/insert.ts), so an upgrade needs no
 * drain.
 */
export const PAYLOAD_COLUMNS = [
  'id', 'projectId', 'name', 'sessionId', 'createdAt', 'timestamp',
  'deviceId', 'profileId', 'path', 'origin', 'referrer', 'referrerName', 'referrerType',
  'utmSource', 'utmMedium', 'utmCampaign', 'utmTerm', 'utmContent', 'country', 'city', 'region',
  'latitude', 'longitude', 'os', 'osVersion', 'browser', 'browserVersion', 'device', 'brand', 'model',
  'ip', 'userAgent', 'properties',
] as const;

export type PayloadColumn = (typeof PAYLOAD_COLUMNS)[number];

/** The columns the buffer computes, in front of the payload's. */
export const FIGURE_COLUMNS = ['duration', 'screenViews', 'engagedMs'] as const;

/** Every column of an events row in its position. */
export const EVENT_ROW_COLUMNS = [...FIGURE_COLUMNS, ...PAYLOAD_COLUMNS] as const;

/** The positional payload (a JSON array without the figure columns) of a row given by column. */
export function payloadOf(row: Readonly<Partial<Record<PayloadColumn, unknown>>>): string {
  return JSON.stringify(PAYLOAD_COLUMNS.map((c) => row[c] ?? null));
}

/** The finished row of an event that is never held: duration NULL, screenViews 0, engagedMs NULL (as row() in Lua writes it). */
export const finishedRow = (payload: string): string => `[null,0,null,${payload.slice(1)}`;

/**
 * A held event's payload as the buffer keeps it: the positional payload
 * without its opening '[', so that the sweep's row is '[' + figures + ',' +
 * it, one concatenation (a copy of the payload in Lua costs as much as the
 * row itself). Payloads held by 0.1.0 start with '[' and are still read.
 */
export const heldPayload = (payload: string): string => payload.slice(1);

/** A row is positional when it is a JSON array; rows of earlier releases are objects. */
export const isPositionalRow = (text: string): boolean => text.charCodeAt(0) === 0x5b; // '['

/**
 * A positional row in this release's layout: a row of release 0.1.0 (two
 * figures, then the payload, whose first value is the id string) gets a NULL
 * engagedMs; any other text is returned as it is. Reads two commas, parses
 * nothing.
 */
export function withEngagedColumn(text: string): string {
  // [duration,screenViews,"id",…: duration is digits or null, screenViews digits
  const second = text.indexOf(',', text.indexOf(',') + 1);
  return second > 0 && text.charCodeAt(second + 1) === 0x22 ? `${text.slice(0, second + 1)}null,${text.slice(second + 1)}` : text;
}

/** An events row (any layout) as an object by column, absent values left out: for dead letters, tests and tools. */
export function parseEventRow(text: string): Record<string, unknown> {
  const value = JSON.parse(isPositionalRow(text) ? withEngagedColumn(text) : text) as unknown;
  if (!Array.isArray(value)) return value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  EVENT_ROW_COLUMNS.forEach((c, i) => {
    const v = value[i] as unknown;
    if (v !== null && v !== undefined) out[c] = v;
  });
  if (!('duration' in out)) out.duration = null;
  return out;
}

/** A held payload (either layout) as an object by column, absent values left out. */
export function parsePayload(text: string): Record<string, unknown> {
  // a held payload of this release (heldPayload) lacks its '['
  if (text.charCodeAt(0) !== 0x5b && text.charCodeAt(0) !== 0x7b) text = `[${text}`;
  if (!isPositionalRow(text)) return JSON.parse(text) as Record<string, unknown>;
  const { duration: _d, screenViews: _s, engagedMs: _e, ...payload } = parseEventRow(finishedRow(text));
  return payload;
}

/** An events row given by column in the positional layout (the bench turns its object rows into this). */
export function positionalRow(row: Readonly<Record<string, unknown>>): string {
  return JSON.stringify(EVENT_ROW_COLUMNS.map((c) => row[c] ?? null));
}

/** The id of an events row without parsing it (ids need no JSON escaping: ID_PATTERN). */
export function rowId(text: string): string {
  if (isPositionalRow(text)) {
    // [duration,screenViews,engagedMs,"id",…: the figures are digits or null
    const from = text.indexOf('"') + 1;
    return text.slice(from, text.indexOf('"', from));
  }
  const from = text.indexOf('"id":"') + 6;
  return text.slice(from, text.indexOf('"', from));
}
