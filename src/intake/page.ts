/**
 * Page fields from the page URL the SDK sends as `__path` (the full href):
 * `origin`, `path` (the pathname, without query or fragment) and the five UTM
 * parameters from the query string. Pure: no network, no state.
 */

export interface PageFields {
  origin?: string;
  path?: string;
  utmSource?: string;
  utmMedium?: string;
  utmCampaign?: string;
  utmTerm?: string;
  utmContent?: string;
}

const UTM = [
  ['utm_source', 'utmSource'],
  ['utm_medium', 'utmMedium'],
  ['utm_campaign', 'utmCampaign'],
  ['utm_term', 'utmTerm'],
  ['utm_content', 'utmContent'],
] as const;

/** Most characters kept of a UTM value (the event schema's limit for these columns). */
const UTM_MAX = 256;

/**
 * Splits a page URL into its fields. A value that is not an absolute http(s)
 * URL (an app screen name such as `/settings`) is kept as the path, with no
 * origin.
 */
export function parsePage(href: string | undefined): PageFields {
  if (!href) return {};
  let url: URL;
  try {
    url = new URL(href);
  } catch {
    return { path: href };
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { path: href };
  const fields: PageFields = { origin: url.origin, path: decodePath(url.pathname) };
  for (const [param, field] of UTM) {
    const value = url.searchParams.get(param)?.trim();
    if (value) fields[field] = value.slice(0, UTM_MAX);
  }
  return fields;
}

/** `/caf%C3%A9` reads as `/café` in reports; a malformed escape is kept as sent. */
function decodePath(pathname: string): string {
  try {
    return decodeURIComponent(pathname);
  } catch {
    return pathname;
  }
}
