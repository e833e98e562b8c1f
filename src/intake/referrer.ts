/**
 * Referrer fields from the `__referrer` the SDK sends (`document.referrer`):
 * `referrer` (the URL as sent), `referrerName` and `referrerType` from the list
 * in referrer-list.ts (search, social, email, video, ai, shopping), or
 * `link` with the host as name for any other site. A referrer on the page's own
 * origin (or the same host) is internal navigation, not a source: it gives no
 * fields at all, like a direct visit.
 *
 * Why a list of our own: the npm packages that wrap a referrer database
 * (`referer-parser` and kin) were last published about ten years ago, and
 * OpenPanel's list is AGPL. The list is data, matched by host suffix
 * (`l.facebook.com` → facebook.com) or by brand under any TLD (`google.co.uk`).
 */
import { REFERRER_ANDROID_APPS, REFERRER_BRANDS, REFERRER_HOSTS } from './referrer-list.js';

export type ReferrerType = 'search' | 'social' | 'email' | 'video' | 'ai' | 'shopping' | 'link';

export interface ReferrerFields {
  referrer?: string;
  referrerName?: string;
  referrerType?: ReferrerType;
}

const HOSTS = new Map(Object.entries(REFERRER_HOSTS));
const BRANDS = new Map(Object.entries(REFERRER_BRANDS));

/** A second-level label that is part of a country's public suffix (`co.uk`, `com.br`). */
const SECOND_LEVEL = new Set(['co', 'com', 'net', 'org', 'ac', 'gov', 'edu', 'ne', 'or']);

/** The known source of a host, by the longest listed suffix, then by brand. */
export function lookupHost(hostname: string): readonly [string, ReferrerType] | undefined {
  const labels = hostname.toLowerCase().replace(/\.$/, '').split('.');
  for (let i = 0; i < labels.length - 1; i += 1) {
    const known = HOSTS.get(labels.slice(i).join('.'));
    if (known) return known;
  }
  // brand.<tld> or brand.<co|com…>.<tld>, under any subdomain
  const tld = labels.length >= 3 && SECOND_LEVEL.has(labels[labels.length - 2] as string) ? 2 : 1;
  const brand = labels[labels.length - 1 - tld];
  return brand === undefined ? undefined : BRANDS.get(brand);
}

const sameSite = (a: string, b: string): boolean => a.replace(/^www\./, '') === b.replace(/^www\./, '');

/**
 * Classifies a referrer against the page it led to. `pageOrigin` is the page's
 * origin (from `__path`), when known.
 */
export function classifyReferrer(referrer: string | undefined, pageOrigin: string | undefined): ReferrerFields {
  if (!referrer) return {};
  let url: URL;
  try {
    url = new URL(referrer);
  } catch {
    return {};
  }
  if (url.protocol === 'android-app:') {
    // Android apps send android-app://com.google.android.gm/
    const known = REFERRER_ANDROID_APPS[url.hostname];
    return { referrer, referrerName: known?.[0] ?? url.hostname, referrerType: known?.[1] ?? 'link' };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return {};
  if (pageOrigin) {
    try {
      if (url.origin === pageOrigin || sameSite(url.hostname, new URL(pageOrigin).hostname)) return {};
    } catch {
      // a page origin that is not a URL: compare nothing
    }
  }
  const known = lookupHost(url.hostname);
  return { referrer, referrerName: known?.[0] ?? url.hostname.replace(/^www\./, ''), referrerType: known?.[1] ?? 'link' };
}
