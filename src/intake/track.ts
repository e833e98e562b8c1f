/**
 * OpenPanel's SDK protocol, `POST /track` (what @openpanel/web and
 * @openpanel/sdk send): `{ "type": …, "payload": … }` with the client in the
 * `openpanel-client-id` / `openpanel-client-secret` headers, answered with
 * `{ "deviceId", "sessionId" }`, which the SDK stores.
 *
 *   track     → one event named payload.name; page, referrer, device, geo
 *               and ids derived by the server (enrich.ts, identity.ts)
 *   identify  → one `identify` event: profileId, and firstName, lastName,
 *               email, avatar and properties as traits (the profiles table);
 *               it carries the device id but no session id, so it does not
 *               count as activity on the page (D2)
 *   increment, decrement, group, assign_group, alias, replay
 *             → 400 naming the type: Event Lens has no profile counters,
 *               groups or session replay (README, "Sending events")
 *
 * SDK property keys the server consumes: `__path` (the page's full URL),
 * `__referrer`, `__timestamp` (the time of a queued event), `__deviceId` and
 * `__sessionId` (client-given ids, which win), and from a caller with the
 * secret that forwards its visitor, `__ip` (the visitor's address) and
 * `__os`, `__osVersion`, `__browser`, `__browserVersion`, `__device`,
 * `__brand`, `__model` (which win over the parsed user agent), and
 * `__webdriver` (a bot signal, bots.ts). `__title` and every other key stay
 * properties.
 */
import { EventLensError } from '../errors.js';
import type { IncomingEvent } from '../queue/producer.js';
import type { RequestContext } from './enrich.js';
import { createdAtFrom, withoutKeys } from './enrich.js';
import { DEVICE_OVERRIDES } from './device.js';
import { parsePage } from './page.js';
import { classifyReferrer } from './referrer.js';

/** The types the SDKs send that Event Lens does not store, each with why. */
export const UNSUPPORTED_TYPES: Readonly<Record<string, string>> = {
  increment: 'profile counters are not stored by Event Lens',
  decrement: 'profile counters are not stored by Event Lens',
  group: 'groups are not stored by Event Lens',
  assign_group: 'groups are not stored by Event Lens',
  alias: 'profile aliases are not stored by Event Lens',
  replay: 'session replay is not stored by Event Lens',
};

const CONSUMED = new Set(['__path', '__referrer', '__timestamp', '__deviceId', '__sessionId', '__ip', '__webdriver', ...Object.keys(DEVICE_OVERRIDES)]);

/** A /track body that passed the protocol checks. */
export type TrackBody =
  | { type: 'track'; name: string; profileId?: string; groups?: string[]; properties: Record<string, unknown> }
  | { type: 'identify'; profileId: string; traits: Record<string, unknown>; properties: Record<string, unknown> };

/** A protocol error: the field (dotted) and the rule, as the 400 answer names them. */
export class TrackError extends EventLensError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('TRACK_INVALID', `${field}: ${rule}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function optionalId(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  if (typeof value !== 'string') throw new TrackError(field, 'must be a string');
  return value;
}

/** Checks a /track body; throws TrackError naming the field and the rule. */
export function parseTrackBody(body: unknown): TrackBody {
  if (!isObject(body)) throw new TrackError('body', 'must be a JSON object {"type", "payload"}');
  const { type, payload } = body;
  if (typeof type !== 'string') throw new TrackError('type', 'must be a string (track or identify)');
  const unsupported = UNSUPPORTED_TYPES[type];
  if (unsupported !== undefined) throw new TrackError('type', `"${type}" is not supported: ${unsupported}; send track or identify`);
  if (type !== 'track' && type !== 'identify') throw new TrackError('type', `"${type.slice(0, 40)}" is not a type: expected track or identify`);
  if (!isObject(payload)) throw new TrackError('payload', 'must be a JSON object');
  const properties = payload.properties ?? {};
  if (!isObject(properties)) throw new TrackError('payload.properties', 'must be a JSON object');
  if (type === 'identify') {
    const profileId = optionalId(payload.profileId, 'payload.profileId');
    if (!profileId) throw new TrackError('payload.profileId', 'is required for identify');
    const traits: Record<string, unknown> = {};
    for (const key of ['firstName', 'lastName', 'email', 'avatar'] as const) {
      const value = payload[key];
      if (value === undefined || value === null) continue;
      if (typeof value !== 'string') throw new TrackError(`payload.${key}`, 'must be a string');
      traits[key] = value;
    }
    return { type, profileId, traits, properties };
  }
  const { name, groups } = payload;
  if (typeof name !== 'string' || name.length === 0) throw new TrackError('payload.name', 'must be a non-empty string');
  if (groups !== undefined && (!Array.isArray(groups) || groups.some((g) => typeof g !== 'string'))) {
    throw new TrackError('payload.groups', 'must be a list of strings');
  }
  const profileId = optionalId(payload.profileId, 'payload.profileId');
  return {
    type,
    name,
    ...(profileId ? { profileId } : {}),
    ...(groups && groups.length > 0 ? { groups: groups as string[] } : {}),
    properties,
  };
}

/** The client-given ids of a track body (`__deviceId`, `__sessionId`), which win over derived ones. */
export function clientIds(body: TrackBody): { deviceId?: string; sessionId?: string } {
  const ids: { deviceId?: string; sessionId?: string } = {};
  const d = body.properties.__deviceId;
  const s = body.properties.__sessionId;
  if (typeof d === 'string' && d !== '') ids.deviceId = d;
  if (typeof s === 'string' && s !== '') ids.sessionId = s;
  return ids;
}

/** The page origin of a track body (its `__path`), for the device fingerprint when the request has no Origin. */
export const pageOrigin = (body: TrackBody): string | undefined => parsePage(stringOr(body.properties.__path)).origin;

const stringOr = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/**
 * The event of a /track body, with everything the server derives except the
 * ids (passed in; an empty id is left out). Pure.
 */
export function trackEvent(
  body: TrackBody,
  projectId: string,
  ctx: RequestContext,
  ids: { deviceId: string; sessionId: string },
  maxFutureMs: number,
): IncomingEvent {
  const props = body.properties;
  const page = parsePage(stringOr(props.__path));
  const referrer = classifyReferrer(stringOr(props.__referrer), page.origin ?? (ctx.origin || undefined));
  const properties = withoutKeys(props, CONSUMED);
  if (body.type === 'track' && body.groups) properties.__groups = body.groups;
  const event: IncomingEvent = {
    projectId,
    name: body.type === 'identify' ? 'identify' : body.name,
    createdAt: createdAtFrom(props.__timestamp, ctx.receivedAtMs, maxFutureMs),
    ...(ids.deviceId ? { deviceId: ids.deviceId } : {}),
    // an identify is not activity on a page: outside the session, it cannot stretch the last page's duration (D2)
    ...(body.type === 'identify' || !ids.sessionId ? {} : { sessionId: ids.sessionId }),
    ...(body.profileId ? { profileId: body.profileId } : {}),
    ...page,
    ...referrer,
    ...ctx.device,
    ...ctx.geo,
    ...(ctx.ip ? { ip: ctx.ip } : {}),
    ...(ctx.userAgent ? { userAgent: ctx.userAgent } : {}),
    properties: body.type === 'identify' ? { ...properties, ...body.traits } : properties,
  };
  return event;
}
