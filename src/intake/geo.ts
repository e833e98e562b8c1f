/**
 * Geo fields (`country`, `region`, `city`) for an event, from one of:
 *  1. the headers of a trusted proxy or CDN in front of the server, read only
 *     when TRUST_PROXY is on (anyone can send these headers otherwise):
 *       Cloudflare  cf-ipcountry, cf-region-code | cf-region, cf-ipcity
 *       Vercel      x-vercel-ip-country, x-vercel-ip-country-region, x-vercel-ip-city
 *       CloudFront  cloudfront-viewer-country, cloudfront-viewer-country-region, cloudfront-viewer-city
 *       Fastly / generic  x-country-code | x-geo-country, x-geo-region, x-geo-city
 *  2. a MaxMind database (GeoLite2 or GeoIP2, City or Country `.mmdb`) that the
 *     operator provides with GEOIP_DB, read with the `maxmind` package (MIT).
 *     Nothing is downloaded at run time.
 * Headers win over the database: the proxy saw the real client.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { CityResponse, Reader } from 'maxmind';

export interface GeoFields {
  country?: string;
  region?: string;
  city?: string;
}

const COUNTRY = ['cf-ipcountry', 'x-vercel-ip-country', 'cloudfront-viewer-country', 'x-country-code', 'x-geo-country'];
const REGION = ['cf-region-code', 'cf-region', 'x-vercel-ip-country-region', 'cloudfront-viewer-country-region', 'x-geo-region'];
const CITY = ['cf-ipcity', 'x-vercel-ip-city', 'cloudfront-viewer-city', 'x-geo-city'];

function first(headers: IncomingHttpHeaders, names: readonly string[], max: number): string | undefined {
  for (const name of names) {
    const raw = headers[name];
    const value = Array.isArray(raw) ? raw[0] : raw;
    if (!value) continue;
    let text = value;
    try {
      text = decodeURIComponent(value); // Vercel URL-encodes city names (S%C3%A3o%20Paulo)
    } catch {
      // kept as sent
    }
    text = text.trim();
    if (text) return text.slice(0, max);
  }
  return undefined;
}

const regions = new Intl.DisplayNames(['en'], { type: 'region' });

/**
 * Whether `code` is an ISO 3166-1 alpha-2 country (or a code in common use for
 * one, such as XK) as the runtime's ICU names it: Cloudflare's XX (unknown)
 * and T1 (Tor), ZZ and unassigned pairs are not.
 */
export function isCountryCode(code: string): boolean {
  if (!/^[A-Z]{2}$/.test(code) || code === 'XX' || code === 'T1') return false;
  const name = regions.of(code);
  return name !== undefined && name !== code && name !== 'Unknown Region';
}

/** Geo from a trusted proxy's headers; a country that is none (ZZ, XX, T1, unassigned) is left out. */
export function geoFromHeaders(headers: IncomingHttpHeaders): GeoFields {
  const country = first(headers, COUNTRY, 2)?.toUpperCase();
  const fields: GeoFields = {};
  if (country && isCountryCode(country)) fields.country = country;
  const region = first(headers, REGION, 256);
  const city = first(headers, CITY, 256);
  if (region) fields.region = region;
  if (city) fields.city = city;
  return fields;
}

/** Geo from a MaxMind reader (City databases give all three; Country databases the country). */
export function geoFromDatabase(reader: Pick<Reader<CityResponse>, 'get'>, ip: string | undefined): GeoFields {
  if (!ip) return {};
  let hit: CityResponse | null;
  try {
    hit = reader.get(ip);
  } catch {
    return {}; // not an IP address
  }
  if (!hit) return {};
  const fields: GeoFields = {};
  const country = hit.country?.iso_code;
  if (country && /^[A-Z]{2}$/.test(country)) fields.country = country;
  const region = hit.subdivisions?.[0]?.names?.en ?? hit.subdivisions?.[0]?.iso_code;
  const city = hit.city?.names?.en;
  if (region) fields.region = region.slice(0, 256);
  if (city) fields.city = city.slice(0, 256);
  return fields;
}
