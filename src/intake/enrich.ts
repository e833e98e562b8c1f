/**
 * What the server derives for an event from the request (DESIGN §7), as pure
 * functions of a RequestContext: page fields and UTM from the page URL,
 * referrer name and type, device fields from the User-Agent, geo, the client
 * IP, and `createdAt`. Device and session ids come from identity.ts.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CityResponse, Reader } from 'maxmind';
import { ValidationError } from '../errors.js';
import { LIMITS } from '../event/limits.js';
import { normalizeEvent } from '../event/normalize.js';
import type { IncomingEvent } from '../queue/producer.js';
import { parseDevice, type DeviceFields } from './device.js';
import { geoFromDatabase, geoFromHeaders, type GeoFields } from './geo.js';
import { clientAddress, trustsProxies, type ProxyTrust } from './proxy.js';

/** What a request tells about its sender, read once per request. */
export interface RequestContext {
  receivedAtMs: number;
  userAgent: string;
  ip: string;
  /** The browser's Origin header ('' from a server). */
  origin: string;
  device: Readonly<DeviceFields>;
  geo: GeoFields;
}

export interface ContextOptions {
  trustProxy: ProxyTrust;
  geoip?: Pick<Reader<CityResponse>, 'get'> | undefined;
}

const one = (v: string | string[] | undefined): string => (Array.isArray(v) ? (v[0] ?? '') : (v ?? ''));

/** Reads the sender's facts from a request's socket address and headers. */
export function requestContext(socketIp: string | undefined, headers: IncomingHttpHeaders, options: ContextOptions, receivedAtMs = Date.now()): RequestContext {
  const userAgent = one(headers['user-agent']).slice(0, 1024);
  const ip = clientAddress(socketIp, one(headers['x-forwarded-for']), options.trustProxy);
  const fromProxy = trustsProxies(options.trustProxy) ? geoFromHeaders(headers) : {};
  const geo = fromProxy.country || !options.geoip ? fromProxy : { ...geoFromDatabase(options.geoip, ip), ...fromProxy };
  return { receivedAtMs, userAgent, ip, origin: one(headers.origin), device: parseDevice(userAgent), geo };
}

/**
 * `createdAt` of an SDK event: its `__timestamp` when that is a valid time not
 * more than `maxFutureMs` ahead of the receive time (queued events keep their
 * time), else the receive time.
 */
export function createdAtFrom(timestamp: unknown, receivedAtMs: number, maxFutureMs: number): number {
  if (typeof timestamp !== 'string' && typeof timestamp !== 'number') return receivedAtMs;
  const ms = typeof timestamp === 'number' ? timestamp : Date.parse(timestamp);
  if (!Number.isFinite(ms) || ms > receivedAtMs + maxFutureMs || ms < Date.UTC(2000, 0, 1)) return receivedAtMs;
  return Math.trunc(ms);
}

/**
 * Checks an event against DESIGN §1 as the worker will; returns the reason
 * (`field: rule; …`) when it would be rejected, so the server can answer 400
 * instead of enqueueing it.
 */
export function rejectReason(event: IncomingEvent, receivedAtMs: number, maxFutureMs: number): string | undefined {
  try {
    const normalized = normalizeEvent(event, { receivedAtMs, maxFutureMs }, () => 'check');
    if (Buffer.byteLength(normalized.payload, 'utf8') > LIMITS.maxEventBytes) return `event: must be at most ${LIMITS.maxEventBytes} bytes of JSON`;
    return undefined;
  } catch (err) {
    if (err instanceof ValidationError) return err.message;
    throw err;
  }
}

/** Copies the keys of `from` that are not in `drop` into a new object (own data properties only: `__proto__` stays data). */
export function withoutKeys(from: Record<string, unknown>, drop: ReadonlySet<string>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(from).filter(([k, v]) => !drop.has(k) && v !== undefined));
}
