/**
 * The native batch protocol, `POST /v1/events`, for server-side callers: a
 * JSON array of DESIGN §1 events, or NDJSON (`application/x-ndjson`), with
 * `Authorization: Bearer <clientSecret>` and the client id in
 * `x-client-id` (or `openpanel-client-id`). Every event is checked on its
 * own; the reply lists how many were accepted and each rejected one by index
 * with its reason, and a bad event never rejects the others.
 *
 * `projectId` may be left out (the client's project is used); another
 * project's id is rejected. As with /track, the server fills in what the
 * event leaves out and it can derive: device fields from `userAgent`,
 * referrer name and type from `referrer`, the device id from `userAgent` and
 * `ip` (daily salt), and the session from the device id. Given fields win.
 */
import type { IncomingEvent } from '../queue/producer.js';
import { parseDevice } from './device.js';
import { parsePage } from './page.js';
import { classifyReferrer } from './referrer.js';

/** One line of an NDJSON body, or an item of a JSON array, before it is checked. */
export type RawItem = { value: unknown } | { error: string };

/** Splits an NDJSON body into items (blank lines are skipped, a broken line is an error item). */
export function ndjsonItems(text: string): RawItem[] {
  const items: RawItem[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      items.push({ value: JSON.parse(line) });
    } catch (err) {
      items.push({ error: `event: must be valid JSON (${(err as Error).message})` });
    }
  }
  return items;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * An item as the event to check and enqueue, with the client's project and
 * the fields the server derives from the item's own `userAgent` and
 * `referrer`; or the reason it cannot be one.
 */
export function nativeEvent(item: RawItem, projectId: string): { event: IncomingEvent } | { error: string } {
  if ('error' in item) return item;
  const value = item.value;
  if (!isObject(value)) return { error: 'event: must be a JSON object' };
  if (value.projectId !== undefined && value.projectId !== projectId) {
    return { error: `projectId: must be ${JSON.stringify(projectId)} (the project of this client) or left out` };
  }
  const derived: Record<string, unknown> = {};
  const ua = typeof value.userAgent === 'string' ? value.userAgent : undefined;
  if (ua && value.os === undefined && value.browser === undefined && value.device === undefined) Object.assign(derived, parseDevice(ua));
  if (typeof value.referrer === 'string' && value.referrerType === undefined) {
    const page = typeof value.origin === 'string' ? value.origin : parsePage(typeof value.path === 'string' ? value.path : undefined).origin;
    const { referrer: _kept, ...classified } = classifyReferrer(value.referrer, page);
    Object.assign(derived, classified);
  }
  // derived first, given fields over them; the spread keeps `__proto__` keys of properties as data
  return { event: { ...derived, ...value, projectId } as IncomingEvent };
}
