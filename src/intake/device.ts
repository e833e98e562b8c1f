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
export const isBot = (userAgent: string | undefined): boolean => !userAgent || isbot(userAgent);

/**
 * Recently parsed user agents. Real traffic repeats a few thousand of them,
 * and a parse costs ~25 µs; a hit is a Map lookup. Oldest out first.
 */
const CACHE_SIZE = 4_096;
const cache = new Map<string, Readonly<DeviceFields>>();

/** Parses a User-Agent into the event's device fields; unknown parts are left out. */
export function parseDevice(userAgent: string | undefined): Readonly<DeviceFields> {
  if (!userAgent) return {};
  const hit = cache.get(userAgent);
  if (hit) return hit;
  const fields = Object.freeze(parseUncached(userAgent));
  if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
  cache.set(userAgent, fields);
  return fields;
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
