/**
 * The browser tracker `serve` hosts at `GET /op1.js`, so a site adds one tag
 * and nothing else:
 *
 *   <script src="https://<event-lens>/op1.js" data-client-id="…" async></script>
 *
 * It is OpenPanel's own script-tag build (`@openpanel/web`'s
 * `tracker.global.js`, MIT, read from the installed dependency with its
 * licence kept in the header), between two small parts of Event Lens's: a
 * start that calls `op('init', …)` from the tag's data attributes (apiUrl
 * defaults to the origin the script came from) unless the page called it
 * itself, and the visibility snippet (snippet.ts). The body is built once per
 * process and answered with an ETag and Cache-Control.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { VISIBILITY_SNIPPET } from './snippet.js';

export interface HostedScript {
  body: string;
  etag: string;
  /** Clients cache it for an hour and use a stale copy while revalidating for a day. */
  cacheControl: string;
  version: string;
}

/** The start: an init from the tag's data attributes, unless the page queued its own. */
const START = `(function () {
  var s = document.currentScript, d = (s && s.dataset) || {};
  if (window.op && window.op.q && window.op.q.length) return; // the page called op('init', ...) itself
  if (!d.clientId) { console.warn('Event Lens: add data-client-id to the op1.js script tag'); return; }
  window.op = window.op || function () { (window.op.q = window.op.q || []).push([].slice.call(arguments)); };
  window.op('init', {
    apiUrl: d.apiUrl || new URL(s.src).origin,
    clientId: d.clientId,
    trackScreenViews: d.trackScreenViews !== 'false',
    trackOutgoingLinks: d.trackOutgoingLinks === 'true',
    trackAttributes: d.trackAttributes === 'true'
  });
  // an automated browser says so: a bot signal the server flags (src/intake/bots.ts)
  if (navigator.webdriver) window.op('setGlobalProperties', { __webdriver: true });
})();`;

let built: HostedScript | undefined;

/** The hosted script, built on first use from the installed @openpanel/web. */
export function hostedTracker(): HostedScript {
  if (built) return built;
  const require = createRequire(import.meta.url);
  // the package exports only its module entry: its directory is two levels above dist/index.*
  const root = path.resolve(path.dirname(require.resolve('@openpanel/web')), '..');
  const version = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const licence = readFileSync(path.join(root, 'LICENSE'), 'utf8').trim();
  const tracker = readFileSync(path.join(root, 'dist', 'src', 'tracker.global.js'), 'utf8');
  const body = [
    `/*! Event Lens tracker: <script src=".../op1.js" data-client-id="..." async></script>`,
    ` * It holds OpenPanel's @openpanel/web ${version} tracker (https://github.com/Openpanel-dev/openpanel), under its licence:`,
    ...licence.split('\n').map((line) => ` * ${line}`.trimEnd()),
    ' */',
    START,
    // OpenPanel's build, unchanged; it starts only when an init was queued
    'if (window.op && window.op.q && window.op.q.length) {',
    tracker,
    '}',
    '// Event Lens: page visibility, for durations (D2) and engaged time (E1)',
    `if (window.openpanel) {\n${VISIBILITY_SNIPPET}\n}`,
    '',
  ].join('\n');
  built = {
    body,
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`,
    cacheControl: 'public, max-age=3600, stale-while-revalidate=86400',
    version,
  };
  return built;
}
