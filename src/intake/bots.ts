/**
 * Bot signals of a browser request beyond its user agent (DESIGN §7: bots
 * dropped or flagged and counted), each with what it does:
 *
 *   user-agent         isbot's maintained list matches (crawlers, monitors,
 *                      HeadlessChrome, PhantomJS, …)            → dropped
 *   webdriver          the page says navigator.webdriver (the hosted tracker
 *                      sends it as __webdriver): Selenium, Playwright,
 *                      Puppeteer; also a company's own browser tests  → flagged
 *   no-fetch-metadata  a browser that sends Sec-Fetch-* on every request
 *                      (Chrome 76+, Firefox 90+, Safari 16.4+) sent none:
 *                      a script posing as one                    → flagged
 *   no-client-hints    a Chromium 89+ user agent without sec-ch-ua  → flagged
 *
 * The header signals are read only on a secure request (HTTPS as a trusted
 * proxy reports it, or loopback), where browsers send those headers; over
 * plain HTTP every real visitor would lack them. Flags never drop a visitor
 * (privacy tools strip headers, synthetic tests are wanted): a flagged event
 * carries `__botReasons` ("webdriver,no-client-hints") in its properties, and
 * every signal is counted by reason and action. Pure.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { isBot } from './device.js';

export type BotReason = 'user-agent' | 'webdriver' | 'no-fetch-metadata' | 'no-client-hints';

export interface BotVerdict {
  /** A signal that drops the event. */
  drop: BotReason | undefined;
  /** Signals that only flag it. */
  flags: BotReason[];
}

/** The property a flagged event carries its reasons in. */
export const BOT_REASONS_PROPERTY = '__botReasons';

const version = (ua: string, re: RegExp): number => Number(re.exec(ua)?.[1] ?? 0);

/** Whether this browser sends fetch metadata (Sec-Fetch-*) with every request. */
function sendsFetchMetadata(ua: string): boolean {
  if (/Firefox\//.test(ua)) return version(ua, /Firefox\/(\d+)/) >= 90;
  if (/Chrome\//.test(ua)) return version(ua, /Chrome\/(\d+)/) >= 76;
  if (/Safari\//.test(ua) && /Version\//.test(ua)) return version(ua, /Version\/(\d+)/) > 16 || (version(ua, /Version\/(\d+)/) === 16 && version(ua, /Version\/16\.(\d+)/) >= 4);
  return false;
}

/** The verdict on a browser request: `secure` when it arrived over HTTPS (or loopback), `properties` what the page sent. */
export function botVerdict(userAgent: string, headers: IncomingHttpHeaders, properties: Readonly<Record<string, unknown>>, secure: boolean): BotVerdict {
  if (isBot(userAgent)) return { drop: 'user-agent', flags: [] };
  const flags: BotReason[] = [];
  if (properties.__webdriver === true) flags.push('webdriver');
  if (secure && sendsFetchMetadata(userAgent) && headers['sec-fetch-site'] === undefined && headers['sec-fetch-mode'] === undefined) flags.push('no-fetch-metadata');
  if (secure && /Chrome\//.test(userAgent) && version(userAgent, /Chrome\/(\d+)/) >= 89 && headers['sec-ch-ua'] === undefined) flags.push('no-client-hints');
  return { drop: undefined, flags };
}

/** Whether a request arrived over a secure transport, as far as the server can tell. */
export function isSecureRequest(headers: IncomingHttpHeaders, socketIp: string, trustsProxy: boolean): boolean {
  const proto = headers['x-forwarded-proto'];
  if (trustsProxy && (Array.isArray(proto) ? proto[0] : proto)?.split(',')[0]?.trim().toLowerCase() === 'https') return true;
  return socketIp === '127.0.0.1' || socketIp === '::1';
}
