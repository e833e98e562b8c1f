/**
 * The real clients end to end: OpenPanel's own `@openpanel/web` tracker in
 * headless Chromium (Debian's package, driven by playwright-core) and
 * `@openpanel/sdk` from Node, through real `event-lens serve` and
 * `event-lens worker` processes, a private redis-server and embedded
 * ClickHouse, to the rows.
 *
 * The page navigates with history.pushState three times with known waits,
 * then is closed, which makes it hidden. The page's only tracking is the
 * script tag of the tracker `serve` hosts (`/op1.js`: OpenPanel's tracker and
 * the visibility snippet, src/intake/tracker.ts), which sends `page_hidden` on
 * `visibilitychange`, and by D2 that event gives the last page its duration.
 * A second page is hidden for a measured while and shown again, which by E1
 * is taken out of its engaged time. Durations are measured by the server's receive times, so they
 * match how long each page was open as the test saw it (within TOLERANCE_MS,
 * which covers the SDK's 50 ms debounce and request timing), and are at least
 * the waits. (Comparing with the waits alone failed on a loaded CI run: the
 * test's own steps between the waits took 520 ms.)
 *
 * Headless Chromium says `HeadlessChrome` in its user agent, which is a bot
 * (dropped by the server). The browser context uses Chromium's own user agent
 * with that one word changed to `Chrome`, as a headed Chromium sends it.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OpenPanel } from '@openpanel/sdk';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openClickHouse, queryRows, type ClickHouse } from '../../../src/clickhouse/client.js';
import { runReport } from '../../../src/clickhouse/reports.js';
import { freePort } from '../../../src/ops/redis-server.js';
import { startProc, waitFor, waitReady, type Proc } from '../../helpers/processes.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const TOLERANCE_MS = 300;
const WAITS_MS = [1_500, 2_200, 1_000, 1_800]; // on /, /two, /three, /four (the last until the page is hidden)
const BROWSER_CLIENT = 'browser-client-e2e';
const SERVER_CLIENT = 'server-client-e2e';
const SECRET = 'e2e-server-secret-0123456789';

let redis: TestRedis;
let dir: string;
let worker: Proc;
let serve: Proc;
let site: http.Server;
let siteOrigin: string;
let apiUrl: string;
let ch: ClickHouse;
let browser: Browser;

/** The test site: a single-page app whose only tracking is the one script tag of the tracker `serve` hosts. */
function page(): string {
  return `<!doctype html><html><head><title>Event Lens e2e</title>
<script src="${apiUrl}/op1.js" data-client-id="${BROWSER_CLIENT}" async></script>
</head><body><h1>shop</h1></body></html>`;
}

const env = (): Record<string, string> => ({
  REDIS_URL: redis.url,
  BUFFER_KEY_PREFIX: redis.prefix,
  QUEUE_NAME: `${redis.prefix}-q`,
  EVENT_LENS_DATA_DIR: path.join(dir, 'data'),
  EVENT_LENS_PROJECTS: path.join(dir, 'projects.json'),
  GRACE_MS: '500',
  SESSION_TIMEOUT_MS: '4000',
  SWEEP_INTERVAL_MS: '100',
  FLUSH_INTERVAL_MS: '200',
  WORKER_LOCK_MS: '1000',
  INTAKE_BATCH_WINDOW_MS: '2',
});

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run does) or set CHROMIUM_PATH`);
  redis = await testRedis();
  dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-e2e-'));
  site = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(page());
  });
  await new Promise<void>((resolve) => site.listen(0, '127.0.0.1', resolve));
  siteOrigin = `http://127.0.0.1:${(site.address() as AddressInfo).port}`;
  const apiPort = await freePort();
  apiUrl = `http://127.0.0.1:${apiPort}`;
  writeFileSync(
    path.join(dir, 'projects.json'),
    JSON.stringify([
      { projectId: 'e2e', clientId: BROWSER_CLIENT, origins: [siteOrigin] },
      { projectId: 'e2e', clientId: SERVER_CLIENT, clientSecret: SECRET },
    ]),
  );
  worker = startProc(['worker', '--role', 'all'], { ...env(), METRICS_PORT: '0' });
  serve = startProc(['serve', '--port', String(apiPort), '--host', '127.0.0.1'], env());
  await waitReady(`${apiUrl}/readyz`);
  await waitFor('the worker to serve embedded ClickHouse', async () => (existsSync(path.join(dir, 'data', 'endpoint.json')) ? true : undefined), 60_000);
  ch = await openClickHouse({ clickhouseUrl: undefined, dataDir: path.join(dir, 'data'), clickhouseDatabase: 'event_lens' });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await ch?.close();
  await serve?.stop();
  await worker?.stop();
  await new Promise((resolve) => site?.close(resolve));
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Row {
  name: string;
  path: string;
  duration: number | null;
  deviceId: string;
  sessionId: string;
  origin: string;
  utmSource: string;
  utmCampaign: string;
  referrer: string;
  referrerName: string;
  referrerType: string;
  browser: string;
  os: string;
  device: string;
  title: string;
}

describe('the real SDKs end to end', () => {
  it('@openpanel/web in Chromium: four screen views with durations that match the waits, the last from the hide event', async () => {
    const probe = await browser.newPage();
    const headlessUa = await probe.evaluate(() => navigator.userAgent);
    await probe.close();
    const context = await browser.newContext({ userAgent: headlessUa.replace('HeadlessChrome', 'Chrome') });
    const tab = await context.newPage();
    // when each page began, seen from here: the first view's request, then each navigation and the close
    // (on a loaded machine the test's own steps take time, so the durations are compared with these)
    const marks: number[] = [];
    tab.on('request', (r) => {
      if (marks.length === 0 && r.url().endsWith('/track') && r.method() === 'POST') marks.push(Date.now());
    });
    await tab.goto(`${siteOrigin}/?utm_source=newsletter&utm_campaign=e2e`, { referer: 'https://www.google.com/' });
    const ids = await waitFor('the SDK to receive its ids', async () => {
      const got = await tab.evaluate(() => {
        const op = (window as unknown as { openpanel?: { getDeviceId(): string; getSessionId(): string } }).openpanel;
        return op && op.getSessionId() ? { deviceId: op.getDeviceId(), sessionId: op.getSessionId() } : undefined;
      });
      return got ?? undefined;
    }, 10_000, 20);
    await sleep(WAITS_MS[0] as number);
    for (const [i, route] of ['/two', '/three', '/four'].entries()) {
      marks.push(Date.now());
      await tab.evaluate((r) => history.pushState({}, '', r), route);
      await sleep(WAITS_MS[i + 1] as number);
    }
    marks.push(Date.now());
    await tab.close({ runBeforeUnload: true }); // the page becomes hidden: visibilitychange → page_hidden
    await context.close();

    const rows = await waitFor(
      'four screen views with settled durations in ClickHouse',
      async () => {
        const r = await queryRows<Row>(
          ch,
          `SELECT name, path, duration, deviceId, sessionId, origin, utmSource, utmCampaign, referrer, referrerName, referrerType,
                  browser, os, device, properties['__title'] AS title
             FROM event_lens.events WHERE projectId = 'e2e' AND sessionId = {s:String} ORDER BY createdAt, id`,
          { s: ids.sessionId },
        );
        const views = r.filter((x) => x.name === 'screen_view');
        return views.length === 4 && views.every((v) => v.duration !== null) && r.some((x) => x.name === 'page_hidden') ? r : undefined;
      },
      40_000,
      250,
    );
    const views = rows.filter((r) => r.name === 'screen_view');
    console.info(`browser e2e: durations ${views.map((v) => `${v.path}=${v.duration} ms`).join(', ')} for waits ${WAITS_MS.join(', ')} ms`);
    expect(views.map((v) => v.path)).toEqual(['/', '/two', '/three', '/four']);
    views.forEach((v, i) => {
      const measured = (marks[i + 1] as number) - (marks[i] as number);
      expect(Math.abs(Number(v.duration) - measured), `duration of ${v.path}: ${v.duration}, page open ${measured} ms`).toBeLessThan(TOLERANCE_MS);
      expect(Number(v.duration), `duration of ${v.path}`).toBeGreaterThanOrEqual((WAITS_MS[i] as number) - 100);
    });
    expect(new Set(rows.map((r) => r.deviceId))).toEqual(new Set([ids.deviceId]));
    expect(new Set(rows.map((r) => r.sessionId))).toEqual(new Set([ids.sessionId]));
    expect(views[0]).toMatchObject({ origin: siteOrigin, utmSource: 'newsletter', utmCampaign: 'e2e', referrer: 'https://www.google.com/', referrerName: 'Google', referrerType: 'search', title: 'Event Lens e2e' });
    for (const v of rows) expect(v).toMatchObject({ browser: 'Chrome', os: 'Linux', device: 'desktop' });
  }, 90_000);

  it('@openpanel/web in Chromium: engaged time leaves out the time a page was hidden, next to its duration', async () => {
    const probe = await browser.newPage();
    const headlessUa = await probe.evaluate(() => navigator.userAgent);
    await probe.close();
    const context = await browser.newContext({ userAgent: headlessUa.replace('HeadlessChrome', 'Chrome') });
    const tab = await context.newPage();
    let start = 0;
    tab.on('request', (r) => {
      if (start === 0 && r.url().endsWith('/track') && r.method() === 'POST') start = Date.now();
    });
    await tab.goto(`${siteOrigin}/engaged`);
    const sessionId = await waitFor('the SDK to receive its session', async () => tab.evaluate(() => (window as unknown as { openpanel?: { getSessionId(): string } }).openpanel?.getSessionId() || undefined), 10_000, 20);
    // Headless Chromium reports every page visible: a second tab, a minimised window and CDP lifecycle
    // changes all left document.visibilityState at 'visible' when tried. So the page's visibilityState is
    // overridden and a real visibilitychange dispatched in it; the snippet and the tracker then run as they
    // would for a real tab switch. The close at the end is the browser's own hide.
    const setVisibility = (state: 'hidden' | 'visible'): Promise<number> =>
      tab.evaluate((s) => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => s });
        document.dispatchEvent(new Event('visibilitychange'));
        return Date.now();
      }, state);
    await sleep(1_200);
    const hiddenAt = await setVisibility('hidden');
    await sleep(1_500);
    const shownAt = await setVisibility('visible');
    await sleep(800);
    const secondAt = Date.now();
    await tab.evaluate(() => {
      delete (document as unknown as { visibilityState?: string }).visibilityState; // the browser's own state again
      history.pushState({}, '', '/engaged-two');
    });
    await sleep(1_000);
    const closedAt = Date.now();
    await tab.close({ runBeforeUnload: true });
    await context.close();

    const rows = await waitFor(
      'both views with settled durations and engaged times',
      async () => {
        const r = await queryRows<{ name: string; path: string; duration: number | null; engagedMs: number | null }>(
          ch,
          `SELECT name, path, duration, engagedMs FROM event_lens.events WHERE projectId = 'e2e' AND sessionId = {s:String} ORDER BY createdAt, id`,
          { s: sessionId },
        );
        const views = r.filter((x) => x.name === 'screen_view');
        return views.length === 2 && views.every((v) => v.engagedMs !== null) && r.filter((x) => x.name === 'page_hidden').length === 2 ? r : undefined;
      },
      40_000,
      250,
    );
    const [first, second] = rows.filter((r) => r.name === 'screen_view') as [(typeof rows)[number], (typeof rows)[number]];
    const visible = hiddenAt - start + (secondAt - shownAt);
    console.info(
      `browser e2e engaged: ${first.path} duration ${first.duration} ms, engaged ${first.engagedMs} ms (measured open ${secondAt - start} ms, visible ${visible} ms, hidden ${shownAt - hiddenAt} ms); ` +
        `${second.path} duration ${second.duration} ms, engaged ${second.engagedMs} ms (measured ${closedAt - secondAt} ms)`,
    );
    expect(rows.map((r) => r.name)).toEqual(['screen_view', 'page_hidden', 'page_visible', 'screen_view', 'page_hidden']);
    expect(Math.abs(Number(first.duration) - (secondAt - start))).toBeLessThan(TOLERANCE_MS);
    expect(Math.abs(Number(first.engagedMs) - visible)).toBeLessThan(TOLERANCE_MS);
    expect(Number(first.duration) - Number(first.engagedMs)).toBeGreaterThanOrEqual(1_500 - TOLERANCE_MS);
    expect(Math.abs(Number(second.engagedMs) - (closedAt - secondAt))).toBeLessThan(TOLERANCE_MS);
    expect(second.engagedMs).toBe(second.duration);
  }, 90_000);

  it('@openpanel/sdk from a Node backend forwarding its visitor: pages with durations in the pages report', async () => {
    const visitor = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
    const op = new OpenPanel({ clientId: SERVER_CLIENT, clientSecret: SECRET, apiUrl });
    op.api.addHeader('user-agent', visitor);
    const page = (path: string) => ({ __path: `https://backend.example${path}`, __ip: '203.0.113.77' });
    await op.track('screen_view', page('/server-a'));
    await sleep(1_200);
    await op.track('screen_view', page('/server-b'));
    await sleep(700);
    await op.track('page_hidden', page('/server-b'));
    const report = await waitFor(
      'both pages with durations in the pages report',
      async () => {
        const rows = await runReport(ch, 'pages', { projectId: 'e2e', from: '2000-01-01', to: '2999-12-31', where: [{ field: 'path', operator: 'startsWith', value: '/server-' }], limit: 10 });
        return rows.length === 2 && rows.every((r) => r.avg_time_on_page_s !== null) ? rows : undefined;
      },
      40_000,
      250,
    );
    const seconds = Object.fromEntries(report.map((r) => [r.path, Number(r.avg_time_on_page_s)]));
    console.info(`server-side e2e: pages report ${JSON.stringify(report)}`);
    expect(seconds['/server-a']).toBeGreaterThanOrEqual(1.1);
    expect(seconds['/server-b']).toBeGreaterThanOrEqual(0.6);
    const [row] = await queryRows<{ deviceId: string; sessionId: string; os: string; ip: string }>(ch, `SELECT deviceId, sessionId, os, ip FROM event_lens.events WHERE path = '/server-a'`);
    expect(row).toMatchObject({ os: 'iOS', ip: '203.0.113.77' });
    expect(row?.deviceId).toMatch(/^[0-9a-f]{32}$/);
  }, 60_000);

  it('@openpanel/sdk from Node: track and identify give an events row and a profiles row', async () => {
    const op = new OpenPanel({ clientId: SERVER_CLIENT, clientSecret: SECRET, apiUrl });
    await op.identify({ profileId: 'user-42', firstName: 'Ada', lastName: 'Lovelace', email: 'ada@example.com', properties: { plan: 'pro' } });
    await op.track('signup', { __deviceId: 'backend-device-1', method: 'email' });
    const rows = await waitFor(
      'the signup row and the profile',
      async () => {
        const events = await queryRows<{ name: string; profileId: string; deviceId: string; method: string }>(
          ch,
          `SELECT name, profileId, deviceId, properties['method'] AS method FROM event_lens.events WHERE projectId = 'e2e' AND name IN ('signup', 'identify') ORDER BY name`,
        );
        const profiles = await queryRows<{ profileId: string; email: string; firstName: string; plan: string }>(
          ch,
          `SELECT profileId, properties['email'] AS email, properties['firstName'] AS firstName, properties['plan'] AS plan FROM event_lens.profiles FINAL WHERE projectId = 'e2e'`,
        );
        return events.length === 2 && profiles.length === 1 ? { events, profiles } : undefined;
      },
      30_000,
      250,
    );
    expect(rows.events).toEqual([
      { name: 'identify', profileId: 'user-42', deviceId: '', method: '' },
      { name: 'signup', profileId: 'user-42', deviceId: 'backend-device-1', method: 'email' },
    ]);
    expect(rows.profiles).toEqual([{ profileId: 'user-42', email: 'ada@example.com', firstName: 'Ada', plan: 'pro' }]);
  }, 60_000);
});
