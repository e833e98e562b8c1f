/**
 * Device fields from the User-Agent, with ua-parser-js 1.x (MIT; 2.x is AGPL,
 * so the dependency is held at ^1): `os`, `osVersion`, `browser`,
 * `browserVersion`, `device` (desktop, mobile or tablet), `brand`, `model`.
 * Bots are recognised with isbot (Unlicense), whose pattern list is kept up
 * to date by its maintainers; the server drops them and counts them.
 */
import { isbot } from 'isbot';
import UAParser from 'ua-parser-js';

export interface DeviceFields {
  os?: string;
  osVersion?: string;
  browser?: string;
  browserVersion?: string;
  device?: 'desktop' | 'mobile' | 'tablet';
  brand?: string;
  model?: string;
}

/** The field limits of the event schema (DESIGN §1): longer parser output is cut, never rejected. */
const cut = (value: string | undefined, max: number): string | undefined => (value ? value.slice(0, max) : undefined);

/** True for crawlers, monitors, headless fetchers and empty user agents. */
export const isBot = (userAgent: string | undefined): boolean => !userAgent || isbotRemembered(userAgent);

/** A program's own user agent: empty, or only `name/version` (`node`, `curl/8.1`, `@openpanel/sdk/1.3.1`). */
export const isProgramAgent = (userAgent: string | undefined): boolean => !userAgent || /^[^\s/()]+(\/[^\s()]*)?$/.test(userAgent);

/**
 * Whether a user agent is a server rather than a visitor's browser or app,
 * as OpenPanel decides it for callers with the secret: a program's own
 * (isProgramAgent), or one in which no browser, no OS and no device are found.
 * A backend that forwards its visitor's user agent is then treated as that
 * visitor's browser.
 */
export function isServerAgent(userAgent: string | undefined): boolean {
  if (isProgramAgent(userAgent)) return true;
  const d = parseDevice(userAgent);
  return d.browser === undefined && d.os === undefined && d.brand === undefined && d.model === undefined;
}

/** The SDK properties that override fields parsed from the user agent, by field. */
export const DEVICE_OVERRIDES = {
  __os: 'os',
  __osVersion: 'osVersion',
  __browser: 'browser',
  __browserVersion: 'browserVersion',
  __device: 'device',
  __brand: 'brand',
  __model: 'model',
} as const satisfies Record<string, keyof DeviceFields>;

/** Device fields with the overrides a caller sent (non-empty strings) in place of the parsed ones. */
export function withOverrides(device: Readonly<DeviceFields>, properties: Readonly<Record<string, unknown>>): DeviceFields {
  const out: Record<string, unknown> = { ...device };
  for (const [key, field] of Object.entries(DEVICE_OVERRIDES)) {
    const value = properties[key];
    if (typeof value === 'string' && value !== '') out[field] = value.slice(0, 64);
  }
  return out as DeviceFields;
}

/**
 * Real traffic repeats a few thousand user agents, and each is parsed
 * (~25 µs) and matched against isbot's patterns (one large regular
 * expression, 1.7 % of serve's CPU under `bench http`) on every request: the
 * last CACHE_SIZE results are kept by user agent, oldest out first.
 */
const CACHE_SIZE = 4_096;

/** `fn` with its results for the last CACHE_SIZE keys kept. */
function remembered<T>(fn: (key: string) => T): (key: string) => T {
  const cache = new Map<string, T>();
  return (key) => {
    const hit = cache.get(key);
    if (hit !== undefined) return hit;
    const value = fn(key);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(key, value);
    return value;
  };
}

const isbotRemembered = remembered(isbot);
const parseRemembered = remembered((userAgent) => Object.freeze(parseUncached(userAgent)));

/** Parses a User-Agent into the event's device fields; unknown parts are left out. */
export function parseDevice(userAgent: string | undefined): Readonly<DeviceFields> {
  return userAgent ? parseRemembered(userAgent) : {};
}

function parseUncached(userAgent: string): DeviceFields {
  const ua = new UAParser(userAgent).getResult();
  // ua-parser says mobile, tablet, smarttv, console, wearable, embedded, or nothing (a desktop browser)
  const type = ua.device.type;
  const device = type === 'tablet' ? 'tablet' : type === 'mobile' || type === 'wearable' ? 'mobile' : 'desktop';
  const fields: DeviceFields = {
    os: cut(ua.os.name, 64),
    osVersion: cut(ua.os.version, 64),
    browser: cut(ua.browser.name, 64),
    browserVersion: cut(ua.browser.version, 64),
    device,
    brand: cut(ua.device.vendor, 64),
    model: cut(ua.device.model, 128),
  };
  for (const key of Object.keys(fields) as (keyof DeviceFields)[]) if (fields[key] === undefined) delete fields[key];
  return fields;
}
