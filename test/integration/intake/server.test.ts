/**
 * The ingestion server against a real redis-server: every answer a client can
 * get (the README's table), what reaches the queue, CORS, coalescing, ids,
 * backpressure and a dead Redis. Requests go through fastify's inject (no
 * socket); the real SDKs and sockets are in sdk.test.ts and processes.test.ts.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntakeKeys } from '../../../src/buffer/keys.js';
import { loadConfig, type Config } from '../../../src/config.js';
import { Identity } from '../../../src/intake/identity.js';
import { startIntake, type IntakeService } from '../../../src/intake/service.js';
import { createLogger } from '../../../src/ops/log.js';
import { CHROME, ORIGIN, PROJECTS, SECRET } from '../../helpers/intake.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';


let redis: TestRedis;
let config: Config;
let intake: IntakeService;
let queue: Queue;
let raw: Redis;

// what Chromium sends with the SDK's fetch (fetch metadata and client hints: bots.ts reads them)
const browser = {
  'content-type': 'application/json',
  'openpanel-client-id': 'browser-client',
  origin: ORIGIN,
  'user-agent': CHROME,
  'sec-fetch-site': 'cross-site',
  'sec-fetch-mode': 'cors',
  'sec-ch-ua': '"Chromium";v="131"',
};
const native = { 'content-type': 'application/json', 'x-client-id': 'server-client', authorization: `Bearer ${SECRET}` };
const screenView = (path: string, extra: Record<string, unknown> = {}) => ({
  type: 'track',
  payload: { name: 'screen_view', properties: { __path: `${ORIGIN}${path}`, __referrer: 'https://www.google.com/', __title: 'T', ...extra } },
});

/** Every event in the queue's waiting jobs. */
async function queued(): Promise<Record<string, unknown>[]> {
  const jobs = await queue.getJobs(['waiting']);
  return jobs.flatMap((j) => (j.data as { events: Record<string, unknown>[] }).events);
}

const post = (url: string, headers: Record<string, string>, payload: unknown) =>
  intake.app.inject({ method: 'POST', url, headers, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

beforeAll(async () => {
  redis = await testRedis();
  config = loadConfig({
    REDIS_URL: redis.url,
    BUFFER_KEY_PREFIX: redis.prefix,
    QUEUE_NAME: `${redis.prefix}-q`,
    SESSION_TIMEOUT_MS: '60000',
    ENQUEUE_TIMEOUT_MS: '1000',
    INTAKE_BATCH_WINDOW_MS: '20',
    INTAKE_MAX_BODY_BYTES: '1048576',
    INTAKE_MAX_REQUEST_EVENTS: '100',
    BACKLOG_HIGH_WATERMARK: '50',
    BACKLOG_LOW_WATERMARK: '10',
    PORT: '0',
  });
  intake = await startIntake(config, PROJECTS, createLogger('silent'), { host: '127.0.0.1' });
  queue = new Queue(config.queueName, { connection: { url: redis.url } });
  raw = new Redis(redis.url);
});

afterAll(async () => {
  await intake?.stop();
  await queue?.close();
  raw?.disconnect();
  await redis?.stop();
});

describe('POST /track', () => {
  it('answers {deviceId, sessionId} only once the event is in the queue, with the derived fields', async () => {
    await queue.drain();
    const r = await post('/track', browser, screenView('/hats?utm_source=news&utm_campaign=spring'));
    expect(r.statusCode).toBe(200);
    const ids = r.json() as { deviceId: string; sessionId: string };
    expect(ids.deviceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ids.sessionId).toMatch(/^[0-9A-Z]{26}$/);
    expect(await queued()).toEqual([
      expect.objectContaining({
        projectId: 'shop',
        name: 'screen_view',
        deviceId: ids.deviceId,
        sessionId: ids.sessionId,
        origin: ORIGIN,
        path: '/hats',
        utmSource: 'news',
        utmCampaign: 'spring',
        referrer: 'https://www.google.com/',
        referrerName: 'Google',
        referrerType: 'search',
        os: 'Linux',
        browser: 'Chrome',
        device: 'desktop',
        userAgent: CHROME,
        properties: { __title: 'T' },
      }),
    ]);
  });

  it('keeps one visitor in one session and one device id across requests', async () => {
    const a = (await post('/track', browser, screenView('/a'))).json();
    const b = (await post('/track', browser, screenView('/b'))).json();
    expect(b).toEqual(a);
    const other = (await post('/track', { ...browser, 'user-agent': CHROME.replace('131', '130') }, screenView('/a'))).json();
    expect(other.deviceId).not.toBe(a.deviceId);
  });

  it('lets client-given __deviceId and __sessionId win', async () => {
    const r = await post('/track', browser, screenView('/a', { __deviceId: 'my-device', __sessionId: 'my-session' }));
    expect(r.json()).toEqual({ deviceId: 'my-device', sessionId: 'my-session' });
  });

  it('coalesces concurrent requests into few batch jobs', async () => {
    await queue.drain();
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => post('/track', browser, screenView(`/p${i}`))));
    expect(replies.every((r) => r.statusCode === 200)).toBe(true);
    const jobs = await queue.getJobs(['waiting']);
    expect((await queued()).length).toBe(60);
    expect(jobs.length).toBeLessThanOrEqual(6);
  });

  it('stores __proto__ and constructor keys as properties, as data', async () => {
    await queue.drain();
    const body = '{"type":"track","payload":{"name":"click","properties":{"__path":"https://shop.example/","__proto__":{"polluted":"yes"},"constructor":{"prototype":{"x":1}}}}}';
    const r = await post('/track', browser, body);
    expect(r.statusCode).toBe(200);
    const [event] = await queued();
    expect(event?.properties).toEqual(JSON.parse('{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"x":1}}}'));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('drops bots and counts them', async () => {
    await queue.drain();
    const r = await post('/track', { ...browser, 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' }, screenView('/'));
    expect(r.statusCode).toBe(202);
    expect(await queued()).toEqual([]);
    expect(await intake.metrics.registry.getSingleMetricAsString('event_lens_intake_events_total')).toMatch(/outcome="bot"} [1-9]/);
    expect(await intake.metrics.registry.getSingleMetricAsString('event_lens_intake_bot_signals_total')).toMatch(/reason="user-agent",action="drop"} [1-9]/);
  });

  it('flags automation signals (webdriver, a Chromium without client hints or fetch metadata on a secure request) without dropping, counted by reason', async () => {
    await queue.drain();
    // inject comes from 127.0.0.1: a secure context, where Chromium sends sec-fetch-* and sec-ch-ua; a script posing as it does not
    const { 'sec-fetch-site': _s, 'sec-fetch-mode': _m, 'sec-ch-ua': _c, ...scripted } = browser;
    const r = await post('/track', scripted, screenView('/flagged', { __webdriver: true }));
    expect(r.statusCode).toBe(200);
    const [event] = await queued();
    expect(event?.properties).toEqual({ __title: 'T', __botReasons: 'webdriver,no-fetch-metadata,no-client-hints' });
    await queue.drain();
    expect((await post('/track', browser, screenView('/real'))).statusCode).toBe(200);
    expect((await queued())[0]?.properties).toEqual({ __title: 'T' });
    const metric = await intake.metrics.registry.getSingleMetricAsString('event_lens_intake_bot_signals_total');
    expect(metric).toMatch(/reason="webdriver",action="flag"} 1/);
    expect(metric).toMatch(/reason="no-client-hints",action="flag"} [1-9]/);
  });

  it('makes identify an identify event with the traits', async () => {
    await queue.drain();
    const r = await post('/track', browser, { type: 'identify', payload: { profileId: 'u1', firstName: 'Ada', email: 'ada@example.com', properties: { plan: 'pro' } } });
    expect(r.statusCode).toBe(200);
    expect(await queued()).toEqual([expect.objectContaining({ name: 'identify', profileId: 'u1', properties: { plan: 'pro', firstName: 'Ada', email: 'ada@example.com' } })]);
  });
});

describe('bad requests', () => {
  const manyProps = Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i]));
  const cases: [string, string, Record<string, string>, unknown, number, string][] = [
    ['no client id', '/track', { ...browser, 'openpanel-client-id': '' }, screenView('/'), 401, 'openpanel-client-id: header required'],
    ['an unknown client id', '/track', { ...browser, 'openpanel-client-id': 'nobody' }, screenView('/'), 401, 'openpanel-client-id: unknown client id'],
    ['a wrong secret', '/track', { ...browser, 'openpanel-client-id': 'server-client', 'openpanel-client-secret': 'wrong' }, screenView('/'), 401, 'openpanel-client-secret: wrong client secret'],
    ['no secret and no origin', '/track', { 'content-type': 'application/json', 'openpanel-client-id': 'browser-client' }, screenView('/'), 401, 'openpanel-client-secret: header required for a request without an Origin'],
    ['a foreign origin', '/track', { ...browser, origin: 'https://evil.example' }, screenView('/'), 403, 'origin: https://evil.example is not allowed for this client id'],
    ['broken JSON', '/track', browser, '{"type": "track", ', 400, 'body: must be valid JSON'],
    ['an empty body', '/track', browser, '', 400, 'body: must not be empty'],
    ['a 2 MB body', '/track', browser, JSON.stringify(screenView('/', { big: 'x'.repeat(2_000_000) })), 413, 'body: must be at most 1048576 bytes'],
    ['a wrong type of name', '/track', browser, { type: 'track', payload: { name: 5 } }, 400, 'payload.name: must be a non-empty string'],
    ['properties that are a list', '/track', browser, { type: 'track', payload: { name: 'x', properties: [1] } }, 400, 'payload.properties: must be a JSON object'],
    ['10 000 properties', '/track', browser, { type: 'track', payload: { name: 'x', properties: manyProps } }, 400, 'properties: must have at most 512 properties'],
    ['an unsupported type', '/track', browser, { type: 'increment', payload: { profileId: 'u1', property: 'n', value: 1 } }, 400, 'type: "increment" is not supported'],
    ['an unknown type', '/track', browser, { type: 'teleport', payload: {} }, 400, 'type: "teleport" is not a type'],
    ['a too-long client session id', '/track', browser, screenView('/', { __sessionId: 's'.repeat(200) }), 400, 'sessionId: must be a string of at most 128 characters'],
    ['an unsupported content type', '/track', { ...browser, 'content-type': 'application/xml' }, '<x/>', 415, 'content-type: must be application/json'],
    ['no bearer token', '/v1/events', { ...native, authorization: '' }, [], 401, 'authorization: header required (Bearer <clientSecret>)'],
    ['a wrong bearer token', '/v1/events', { ...native, authorization: 'Bearer nope' }, [], 401, 'authorization: wrong client secret'],
    ['a body that is not a list', '/v1/events', native, { name: 'x' }, 400, 'body: must be a JSON array of events'],
    ['more events than allowed', '/v1/events', native, Array.from({ length: 101 }, () => ({ name: 'x', createdAt: 1 })), 413, 'body: must hold at most 100 events (it has 101)'],
    ['an unknown route', '/nothing', browser, {}, 404, 'route: POST /nothing does not exist'],
  ];

  it.each(cases)('%s → the status and message, nothing enqueued, the server still up', async (_what, url, headers, body, status, message) => {
    await queue.drain();
    const r = await post(url, headers, body);
    expect(r.statusCode).toBe(status);
    expect((r.json() as { error: string }).error).toContain(message);
    expect(await queued()).toEqual([]);
    expect((await intake.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('POST /v1/events', () => {
  it('accepts the good events and lists the bad ones by index; one bad event rejects no other', async () => {
    await queue.drain();
    const r = await post('/v1/events', native, [
      { name: 'click', createdAt: '2026-12-01T10:00:00Z', sessionId: 's1' },
      { name: 'x', createdAt: 'yesterday' },
      { projectId: 'other', name: 'x', createdAt: 1 },
      { name: 'screen_view', createdAt: Date.now(), deviceId: 'dev-1', path: '/a' },
    ]);
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({
      accepted: 2,
      rejected: [
        { index: 1, reason: expect.stringContaining('createdAt: must be an ISO-8601 string') },
        { index: 2, reason: 'projectId: must be "shop" (the project of this client) or left out' },
      ],
    });
    const events = await queued();
    expect(events.map((e) => e.name)).toEqual(['click', 'screen_view']);
    // a device without a session gets the device's live session
    expect(events[1]).toMatchObject({ deviceId: 'dev-1', sessionId: expect.stringMatching(/^[0-9A-Z]{26}$/) });
  });

  it('reads NDJSON with its content type', async () => {
    await queue.drain();
    const body = '{"name":"a","createdAt":1790000000000}\n\n{"name":"b","createdAt":1790000000001}\nnot json\n';
    const r = await post('/v1/events', { ...native, 'content-type': 'application/x-ndjson' }, body);
    expect(r.json()).toEqual({ accepted: 2, rejected: [{ index: 2, reason: expect.stringContaining('event: must be valid JSON') }] });
  });
});

describe('GET /op1.js', () => {
  it("serves OpenPanel's tracker with its licence, the tag's init and the visibility snippet, with an ETag and Cache-Control, 304 when unchanged", async () => {
    const r = await intake.app.inject({ method: 'GET', url: '/op1.js' });
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(r.headers['cache-control']).toBe('public, max-age=3600, stale-while-revalidate=86400');
    expect(r.body).toMatch(/@openpanel\/web \d+\.\d+\.\d+ tracker/);
    expect(r.body).toContain('Permission is hereby granted, free of charge');
    expect(r.body).toContain('d.clientId');
    expect(r.body).toContain("'page_hidden' : 'page_visible'");
    const again = await intake.app.inject({ method: 'GET', url: '/op1.js', headers: { 'if-none-match': String(r.headers.etag) } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
  });
});

describe('CORS', () => {
  const preflight = (origin: string) =>
    intake.app.inject({
      method: 'OPTIONS',
      url: '/track',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,openpanel-client-id,openpanel-sdk-name' },
    });

  it('answers a preflight from an allowed origin with the headers the SDK sends', async () => {
    const r = await preflight(ORIGIN);
    expect(r.statusCode).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(String(r.headers['access-control-allow-headers'])).toContain('openpanel-client-id');
  });

  it('gives a foreign origin no CORS permission', async () => {
    const r = await preflight('https://evil.example');
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
  });
});

describe('identity', () => {
  it('keeps the device id and session of a visit that crosses midnight (yesterday’s salt is recognised)', async () => {
    const identity = new Identity(raw, new IntakeKeys(`${redis.prefix}-mid`), 1_800_000);
    const fingerprint = { userAgent: CHROME, ip: '203.0.113.9', origin: ORIGIN, projectId: 'shop' };
    const before = await identity.resolve({ fingerprint, atMs: Date.UTC(2026, 11, 1, 23, 59, 30), nowMs: Date.UTC(2026, 11, 1, 23, 59, 30) });
    const after = await identity.resolve({ fingerprint, atMs: Date.UTC(2026, 11, 2, 0, 0, 30), nowMs: Date.UTC(2026, 11, 2, 0, 0, 30) });
    expect(after).toEqual(before);
    // a new visit the next day (after the timeout) gets the new day's device id
    const later = await identity.resolve({ fingerprint, atMs: Date.UTC(2026, 11, 2, 9, 0), nowMs: Date.UTC(2026, 11, 2, 9, 0) });
    expect(later.deviceId).not.toBe(before.deviceId);
    expect(later.sessionId).not.toBe(before.sessionId);
  });

  it('starts a new session after the timeout and keeps it while events come in time', async () => {
    const identity = new Identity(raw, new IntakeKeys(`${redis.prefix}-to`), 60_000);
    const fingerprint = { userAgent: CHROME, ip: '203.0.113.10', origin: ORIGIN, projectId: 'shop' };
    const t = Date.UTC(2026, 11, 1, 10);
    const s1 = await identity.resolve({ fingerprint, atMs: t, nowMs: t });
    expect((await identity.resolve({ fingerprint, atMs: t + 59_000, nowMs: t + 59_000 })).sessionId).toBe(s1.sessionId);
    expect((await identity.resolve({ fingerprint, atMs: t + 59_000 + 59_000, nowMs: t + 59_000 + 59_000 })).sessionId).toBe(s1.sessionId);
    expect((await identity.resolve({ fingerprint, atMs: t + 118_000 + 60_000, nowMs: t + 118_000 + 60_000 })).sessionId).not.toBe(s1.sessionId);
  });

  it('agrees on one session for concurrent first requests of one visitor', async () => {
    const identity = new Identity(raw, new IntakeKeys(`${redis.prefix}-cc`), 60_000);
    const fingerprint = { userAgent: CHROME, ip: '203.0.113.11', origin: ORIGIN, projectId: 'shop' };
    const all = await Promise.all(Array.from({ length: 20 }, () => identity.resolve({ fingerprint, atMs: Date.UTC(2026, 11, 1, 10), nowMs: Date.UTC(2026, 11, 1, 10) })));
    expect(new Set(all.map((r) => r.sessionId)).size).toBe(1);
    // every key the intake writes carries a TTL
    const keys = await raw.keys(`${redis.prefix}-cc:*`);
    expect(keys.length).toBeGreaterThan(0);
    for (const key of keys) expect(await raw.pttl(key), key).toBeGreaterThan(0);
  });
});

describe('backpressure and a dead Redis', () => {
  it('answers 429 with Retry-After while the backlog is over the high watermark, and /readyz says so', async () => {
    const ready = `${config.keyPrefix}:{0}:ready`;
    await raw.rpush(ready, ...Array.from({ length: 60 }, (_, i) => `row${i}`));
    try {
      await intake.gateCheck();
      const r = await post('/track', browser, screenView('/'));
      expect(r.statusCode).toBe(429);
      expect(r.headers['retry-after']).toBe('5');
      expect((await intake.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    } finally {
      await raw.del(ready);
      await intake.gateCheck();
    }
    expect((await post('/track', browser, screenView('/'))).statusCode).toBe(200);
  });

  it('answers 503 with Retry-After within the enqueue timeout while Redis is down, and 200 again after', async () => {
    const server = redis.server;
    if (!server) return; // TEST_REDIS_URL: a server this test must not kill
    await server.kill('SIGKILL');
    try {
      const started = Date.now();
      const r = await post('/track', browser, screenView('/'));
      expect(Date.now() - started).toBeLessThan(config.enqueueTimeoutMs + 1_000);
      expect(r.statusCode).toBe(503);
      expect(r.headers['retry-after']).toBe('5');
      await intake.gateCheck();
      expect((await intake.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    } finally {
      await server.restart();
    }
    for (let i = 0; i < 50 && (await post('/track', browser, screenView('/'))).statusCode !== 200; i += 1) await new Promise((r) => setTimeout(r, 200));
    expect((await post('/track', browser, screenView('/'))).statusCode).toBe(200);
  });
});
