/**
 * A seeded model of realistic analytics traffic, used by `event-lens generate`,
 * the demo, the benchmarks and the tests. The same options give the same
 * stream byte for byte.
 *
 * Sessions of three projects start spread over a time span; each has a device,
 * a place and a referrer that stay fixed, 1..~20 screen_views (a third bounce),
 * clicks and custom events with nested properties between views, and ends with
 * a session_end (about 40 %) or simply goes idle. With `visibilityFraction`,
 * that share of pages is hidden for a while and shown again (page_hidden,
 * page_visible, as the visibility snippet sends them) and every session's
 * last page is hidden at its end (the tab closed). A few sessions pause for
 * longer than the session timeout and come back (D3). Arrival order is the
 * createdAt order plus a random network delay of up to `jitterMs`, and a small
 * `lateFraction` of events arrives much later (O2).
 */
import { ulid } from 'ulid';
import type { SessionEvent } from '../buffer/durations.js';
import { kindOf } from '../event/normalize.js';

export interface GenerateOptions {
  sessions: number;
  seed: number;
  /** First session start, epoch ms. @defaultValue 2026-10-01T00:00:00Z */
  startMs?: number;
  /** Largest random arrival delay, ms. @defaultValue 3 000 */
  jitterMs?: number;
  /** Share of events that arrive 30..90 s late. @defaultValue 0.002 */
  lateFraction?: number;
  /** Share of sessions that stay idle beyond the timeout and come back. @defaultValue 0.02 */
  idleReturnFraction?: number;
  /**
   * Share of pages hidden for a while and shown again; above 0 the last page of
   * every session is also hidden at its end. @defaultValue 0 (a stream without
   * visibility events: the benchmark's, the same as the previous release's)
   */
  visibilityFraction?: number;
  sessionTimeoutMs?: number;
}

export interface GeneratedEvent {
  id: string;
  projectId: string;
  name: string;
  createdAt: string;
  sessionId?: string;
  deviceId?: string;
  profileId?: string;
  path?: string;
  origin?: string;
  referrer?: string;
  referrerName?: string;
  referrerType?: string;
  utmSource?: string;
  utmMedium?: string;
  utmCampaign?: string;
  utmTerm?: string;
  utmContent?: string;
  country?: string;
  city?: string;
  region?: string;
  latitude?: number;
  longitude?: number;
  os?: string;
  osVersion?: string;
  browser?: string;
  browserVersion?: string;
  device?: string;
  brand?: string;
  model?: string;
  userAgent?: string;
  properties?: Record<string, unknown>;
  /** A visibility event's client-measured engaged slice (never generated; see DESIGN §1). */
  visibleMs?: number;
}

/** The share of pages hidden and shown again in the streams of `generate`, the demo and the chaos suite. */
export const DEMO_VISIBILITY = 0.3;

/** mulberry32: a small, fast, seedable PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Rand = () => number;
const pick = <T>(r: Rand, items: readonly T[]): T => items[Math.floor(r() * items.length)] as T;
function weighted<T>(r: Rand, items: readonly (readonly [T, number])[]): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let x = r() * total;
  for (const [item, w] of items) {
    x -= w;
    if (x <= 0) return item;
  }
  return (items[items.length - 1] as readonly [T, number])[0];
}
/** Log-uniform between lo and hi: many short dwell times, a long tail. */
const logUniform = (r: Rand, lo: number, hi: number): number => Math.round(Math.exp(Math.log(lo) + r() * (Math.log(hi) - Math.log(lo))));

const PROJECTS = [
  { id: 'acme-shop', origin: 'https://shop.acme.test', weight: 5 },
  { id: 'docs-site', origin: 'https://docs.example.test', weight: 3 },
  { id: 'saas-app', origin: 'https://app.saas.test', weight: 2 },
] as const;

function pagePath(r: Rand, project: string): string {
  switch (project) {
    case 'acme-shop':
      return weighted(r, [
        ['/', 4],
        ['/products', 3],
        [`/products/${1 + Math.floor(r() * 200)}`, 6],
        ['/cart', 2],
        ['/checkout', 1],
        [`/category/${pick(r, ['shoes', 'bags', 'hats', 'coats'])}`, 2],
      ] as const);
    case 'docs-site':
      return `/docs/${pick(r, ['start', 'guides', 'api', 'faq'])}/${pick(r, ['install', 'config', 'scaling', 'queries', 'limits', 'errors'])}`;
    default:
      return weighted(r, [
        ['/dashboard', 5],
        ['/settings', 1],
        [`/reports/${1 + Math.floor(r() * 40)}`, 3],
        ['/billing', 1],
      ] as const);
  }
}

const PLACES = [
  { country: 'US', region: 'California', city: 'San Francisco', lat: 37.77, lon: -122.42, w: 6 },
  { country: 'US', region: 'New York', city: 'New York', lat: 40.71, lon: -74.01, w: 5 },
  { country: 'DE', region: 'Berlin', city: 'Berlin', lat: 52.52, lon: 13.4, w: 3 },
  { country: 'KR', region: 'Seoul', city: 'Seoul', lat: 37.57, lon: 126.98, w: 3 },
  { country: 'GB', region: 'England', city: 'London', lat: 51.51, lon: -0.13, w: 3 },
  { country: 'BR', region: 'São Paulo', city: 'São Paulo', lat: -23.55, lon: -46.63, w: 2 },
  { country: 'IN', region: 'Karnataka', city: 'Bengaluru', lat: 12.97, lon: 77.59, w: 2 },
  { country: 'JP', region: 'Tokyo', city: 'Tokyo', lat: 35.68, lon: 139.69, w: 2 },
] as const;

const DEVICES = [
  { os: 'Windows', osVersion: '11', browser: 'Chrome', browserVersion: '131', device: 'desktop', brand: '', model: '', w: 5 },
  { os: 'Mac OS', osVersion: '15.1', browser: 'Safari', browserVersion: '18.1', device: 'desktop', brand: 'Apple', model: 'Macintosh', w: 3 },
  { os: 'iOS', osVersion: '18.1', browser: 'Mobile Safari', browserVersion: '18.1', device: 'mobile', brand: 'Apple', model: 'iPhone', w: 4 },
  { os: 'Android', osVersion: '15', browser: 'Chrome Mobile', browserVersion: '131', device: 'mobile', brand: 'Samsung', model: 'SM-S921B', w: 3 },
  { os: 'Linux', osVersion: '', browser: 'Firefox', browserVersion: '133', device: 'desktop', brand: '', model: '', w: 1 },
] as const;

const REFERRERS = [
  { referrer: '', referrerName: '', referrerType: '', w: 4 },
  { referrer: 'https://www.google.com/', referrerName: 'Google', referrerType: 'search', w: 5 },
  { referrer: 'https://news.ycombinator.com/', referrerName: 'Hacker News', referrerType: 'social', w: 1 },
  { referrer: 'https://t.co/', referrerName: 'Twitter', referrerType: 'social', w: 1 },
  { referrer: 'https://mail.example.test/', referrerName: 'Newsletter', referrerType: 'email', utm: ['newsletter', 'email', 'november'], w: 2 },
] as const;

const CUSTOM = ['click', 'add_to_cart', 'search', 'signup', 'scroll', 'video_play'] as const;

function customProperties(r: Rand, name: string): Record<string, unknown> {
  switch (name) {
    case 'add_to_cart':
      return { product: { id: String(1 + Math.floor(r() * 200)), price: Math.round(r() * 20000) / 100, tags: ['sale', 'new'].slice(0, 1 + Math.floor(r() * 2)) }, quantity: 1 + Math.floor(r() * 3) };
    case 'search':
      return { query: pick(r, ['boots', 'red hat', 'api limits', 'pricing', 'export csv']), results: Math.floor(r() * 50) };
    case 'click':
      return { element: { id: pick(r, ['cta', 'nav-home', 'buy', 'menu', 'footer-link']), text: pick(r, ['Buy now', 'Home', 'Learn more']) } };
    case 'video_play':
      return { video: { id: `v${Math.floor(r() * 30)}`, autoplay: r() < 0.2 } };
    default:
      return { plan: pick(r, ['free', 'pro', 'team']), experiment: { variant: pick(r, ['a', 'b']) } };
  }
}

/** Generates the sessions and returns their events in arrival order. */
/** How long the generated sessions' starts are spread over: about one new session every 0.4 s, at least an hour. */
export const spanMsFor = (sessions: number): number => Math.max(3_600_000, sessions * 400);

/**
 * The start that makes a stream of `sessions` end before the current hour
 * began (sessions last up to about an hour after they start), so reports over
 * the last days show it and no event is in the future.
 */
export function defaultStartMs(sessions: number, nowMs: number): number {
  const hour = 3_600_000;
  return Math.floor(nowMs / hour) * hour - spanMsFor(sessions) - 2 * hour;
}

export function generateEvents(options: GenerateOptions): GeneratedEvent[] {
  const r = prng(options.seed);
  const startMs = options.startMs ?? Date.UTC(2026, 9, 1);
  const jitterMs = options.jitterMs ?? 3_000;
  const lateFraction = options.lateFraction ?? 0.002;
  const idleReturn = options.idleReturnFraction ?? 0.02;
  const timeoutMs = options.sessionTimeoutMs ?? 1_800_000;
  const visibility = options.visibilityFraction ?? 0;
  const spanMs = spanMsFor(options.sessions);
  const out: { event: GeneratedEvent; arrival: number }[] = [];
  const id = (t: number): string => ulid(t, r);

  for (let s = 0; s < options.sessions; s += 1) {
    const project = weighted(r, PROJECTS.map((p) => [p, p.weight] as const));
    const place = weighted(r, PLACES.map((p) => [p, p.w] as const));
    const dev = weighted(r, DEVICES.map((d) => [d, d.w] as const));
    const ref = weighted(r, REFERRERS.map((x) => [x, x.w] as const));
    let t = startMs + Math.floor(r() * spanMs);
    const sessionId = id(t);
    const deviceId = `dev-${Math.floor(r() * options.sessions * 0.7).toString(36)}`;
    const profileId = r() < 0.3 ? `user-${Math.floor(r() * options.sessions * 0.2)}` : undefined;
    const common: Omit<GeneratedEvent, 'id' | 'name' | 'createdAt'> = {
      projectId: project.id,
      sessionId,
      deviceId,
      ...(profileId ? { profileId } : {}),
      origin: project.origin,
      country: place.country,
      region: place.region,
      city: place.city,
      latitude: place.lat,
      longitude: place.lon,
      os: dev.os,
      osVersion: dev.osVersion,
      browser: dev.browser,
      browserVersion: dev.browserVersion,
      device: dev.device,
      ...(dev.brand ? { brand: dev.brand, model: dev.model } : {}),
      userAgent: `Mozilla/5.0 (${dev.os} ${dev.osVersion}) ${dev.browser}/${dev.browserVersion}`,
      ...(ref.referrer ? { referrer: ref.referrer, referrerName: ref.referrerName, referrerType: ref.referrerType } : {}),
      ...('utm' in ref ? { utmSource: ref.utm[0], utmMedium: ref.utm[1], utmCampaign: ref.utm[2] } : {}),
    };
    const push = (name: string, at: number, extra: Partial<GeneratedEvent> = {}): void => {
      const event: GeneratedEvent = { id: id(at), name, createdAt: new Date(at).toISOString(), ...common, ...extra };
      let arrival = at + Math.floor(r() * jitterMs);
      if (r() < lateFraction) arrival += 30_000 + Math.floor(r() * 60_000);
      out.push({ event, arrival });
    };

    const views = r() < 0.33 ? 1 : 2 + Math.floor(-Math.log(1 - r()) * 4);
    const returnsAfterIdle = views > 2 && r() < idleReturn;
    let path = pagePath(r, project.id);
    let lastPath = path;
    for (let v = 0; v < Math.min(views, 30); v += 1) {
      lastPath = path;
      push('screen_view', t, { path, properties: { title: `Page ${path}`, scroll: { depth: Math.floor(r() * 100) } } });
      const dwell = logUniform(r, 2_000, 300_000);
      const actions = Math.floor(r() * 3);
      for (let a = 0; a < actions; a += 1) {
        const name = pick(r, CUSTOM);
        push(name, t + Math.floor(((a + 1) / (actions + 1)) * dwell), { path, properties: customProperties(r, name) });
      }
      // (no random draw without visibility events: the stream stays the same)
      if (visibility > 0 && r() < visibility) {
        const hiddenAt = t + Math.floor(r() * 0.5 * dwell);
        push('page_hidden', hiddenAt, { path });
        push('page_visible', hiddenAt + Math.floor(r() * (t + dwell - hiddenAt)), { path });
      }
      t += dwell;
      if (returnsAfterIdle && v === 1) t += timeoutMs + 60_000 + Math.floor(r() * 600_000);
      path = pagePath(r, project.id);
    }
    if (visibility > 0) push('page_hidden', t, { path: lastPath });
    if (r() < 0.4) push('session_end', t + Math.floor(r() * 5_000));
  }
  out.sort((a, b) => a.arrival - b.arrival);
  return out.map((x) => x.event);
}

/**
 * A stream's events as the reference model takes them: each session's events
 * (keyed by project and session id), and the ids of events without a session.
 */
export function eventsBySession(events: readonly GeneratedEvent[]): { sessions: SessionEvent[][]; sessionless: string[] } {
  const bySession = new Map<string, SessionEvent[]>();
  const sessionless: string[] = [];
  for (const e of events) {
    if (!e.sessionId) {
      sessionless.push(e.id);
      continue;
    }
    const key = `${e.projectId}\u0000${e.sessionId}`;
    let list = bySession.get(key);
    if (!list) bySession.set(key, (list = []));
    list.push({ id: e.id, createdAtMs: Date.parse(e.createdAt), kind: kindOf(e.name), ...(e.visibleMs === undefined ? {} : { sliceMs: e.visibleMs }) });
  }
  return { sessions: [...bySession.values()], sessionless };
}
