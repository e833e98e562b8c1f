/**
 * The ingestion server against what a careless or hostile client sends, over
 * real sockets where HTTP framing matters (Node's fetch, raw TCP), with a real
 * redis-server: every answer names the field and the rule, none is a 500 or a
 * reset, nothing a client sends grows Redis, and every answer keeps its bound
 * while Redis is frozen.
 */
import net from 'node:net';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../../../src/config.js';
import { startIntake, type IntakeService } from '../../../src/intake/service.js';
import { createLogger } from '../../../src/ops/log.js';
import { CHROME, ORIGIN, PROJECTS, SECRET } from '../../helpers/intake.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const BODY_LIMIT = 65_536;

let redis: TestRedis;
let raw: Redis;
let config: Config;
let intake: IntakeService;
let proxied: IntakeService;
let queue: Queue;

const browser = { 'content-type': 'application/json', 'openpanel-client-id': 'browser-client', origin: ORIGIN, 'user-agent': CHROME };
const native = { 'content-type': 'application/json', 'x-client-id': 'server-client', authorization: `Bearer ${SECRET}` };
const track = (properties: Record<string, unknown> = {}) => ({ type: 'track', payload: { name: 'click', properties: { __path: `${ORIGIN}/`, ...properties } } });

async function queued(): Promise<Record<string, unknown>[]> {
  const jobs = await queue.getJobs(['waiting']);
  return jobs.flatMap((j) => (j.data as { events: Record<string, unknown>[] }).events);
}

function settings(extra: Record<string, string> = {}): Config {
  return loadConfig({
    REDIS_URL: redis.url,
    BUFFER_KEY_PREFIX: redis.prefix,
    QUEUE_NAME: `${redis.prefix}-q`,
    SESSION_TIMEOUT_MS: '60000',
    ENQUEUE_TIMEOUT_MS: '1000',
    INTAKE_BATCH_WINDOW_MS: '2',
    INTAKE_MAX_BODY_BYTES: String(BODY_LIMIT),
    PORT: '0',
    ...extra,
  });
}

/** Sends raw bytes over TCP and returns the whole answer as text (the server closes or answers within 3 s). */
function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    socket.setTimeout(3_000, () => socket.end());
    socket.write(text);
  });
}

/**
 * Sends a request whose body the client writes whole, in chunks, before it
 * reads anything (as a client with a blocking write does), then reads the answer.
 */
function writeThenRead(url: string, head: string, body: Buffer): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    socket.pause();
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => socket.resume());
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    const all = Buffer.concat([Buffer.from(head), body]);
    let at = 0;
    const next = (): void => {
      if (at >= all.length) {
        setTimeout(() => socket.resume(), 50);
        return;
      }
      const more = socket.write(all.subarray(at, at + 65_536));
      at += 65_536;
      if (more) setTimeout(next, 1);
      else socket.once('drain', next);
    };
    next();
  });
}

const status = (answer: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1]);
const errorOf = (answer: string): string => (JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { error: string }).error;

beforeAll(async () => {
  redis = await testRedis();
  raw = new Redis(redis.url);
  config = settings();
  intake = await startIntake(config, PROJECTS, createLogger('silent'), { host: '127.0.0.1' });
  proxied = await startIntake(settings({ TRUST_PROXY: '1' }), PROJECTS, createLogger('silent'), { host: '127.0.0.1' });
  queue = new Queue(config.queueName, { connection: { url: redis.url } });
});

afterAll(async () => {
  await intake?.stop();
  await proxied?.stop();
  await queue?.close();
  raw?.disconnect();
  await redis?.stop();
});

describe('numbers, text and bytes a client sends', () => {
  it('rejects a createdAt beyond what a date can hold by its index, and accepts the valid event of the same request', async () => {
    await queue.drain();
    const r = await intake.app.inject({ method: 'POST', url: '/v1/events', headers: native, payload: JSON.stringify([{ name: 'x', createdAt: 8_640_000_000_000_001 }, { name: 'ok', createdAt: Date.now() }]) });
    expect(r.statusCode).toBe(200);
    expect(r.json()).toEqual({ accepted: 1, rejected: [{ index: 0, reason: expect.stringMatching(/^createdAt: /) }] });
    expect((await queued()).map((e) => e.name)).toEqual(['ok']);
  });

  it.each([
    ['/track', browser, Buffer.concat([Buffer.from('{"type":"track","payload":{"name":"click","properties":{"note":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('b"}}}')])],
    ['/v1/events', native, Buffer.concat([Buffer.from('[{"name":"x","createdAt":1790000000000,"properties":{"note":"a'), Buffer.from([0xff, 0xfe]), Buffer.from('b"}}]')])],
    ['/v1/events', { ...native, 'content-type': 'application/x-ndjson' }, Buffer.concat([Buffer.from('{"name":"x","createdAt":1790000000000,"path":"a'), Buffer.from([0xc3]), Buffer.from('"}\n')])],
  ])('rejects invalid UTF-8 in %s (%#) with 400, storing nothing', async (url, headers, payload) => {
    await queue.drain();
    const r = await intake.app.inject({ method: 'POST', url, headers, payload });
    expect(r.statusCode).toBe(400);
    expect((r.json() as { error: string }).error).toBe('body: must be valid UTF-8');
    expect(await queued()).toEqual([]);
  });

  it('refuses NUL in a property key or value as it does in every other field, naming the property', async () => {
    for (const properties of [{ 'a\u0000b': 'x' }, { note: 'a\u0000b' }, { nested: { deep: 'x\u0000' } }]) {
      const r = await intake.app.inject({ method: 'POST', url: '/track', headers: browser, payload: JSON.stringify(track(properties)) });
      expect(r.statusCode).toBe(400);
      expect((r.json() as { error: string }).error).toMatch(/^properties\.[^:]+: must not contain NUL characters/);
    }
  });
});

describe('what a client can make Redis keep', () => {
  it('creates salts for today and yesterday only, whatever days the events of a request are from', async () => {
    const before = new Set(await raw.keys(`${redis.prefix}:{salt}:*`));
    const year = 365 * 86_400_000;
    const events = Array.from({ length: 50 }, (_, i) => ({ name: 'x', createdAt: Date.UTC(2001, 0, 1) + i * year * 0.5, userAgent: CHROME, ip: `203.0.113.${i}` }));
    const r = await intake.app.inject({ method: 'POST', url: '/v1/events', headers: native, payload: JSON.stringify(events) });
    expect(r.statusCode).toBe(200);
    const added = (await raw.keys(`${redis.prefix}:{salt}:*`)).filter((k) => !before.has(k));
    const now = Date.now();
    const days = new Set([new Date(now).toISOString().slice(0, 10), new Date(now - 86_400_000).toISOString().slice(0, 10)]);
    for (const key of added) expect(days.has(key.slice(-10)), key).toBe(true);
    expect((await raw.keys(`${redis.prefix}:{salt}:*`)).length).toBeLessThanOrEqual(2);
  });
});

describe('HTTP as clients and proxies speak it', () => {
  it('answers a body over the limit with a 413 the client can read, also when it writes the whole body before reading', async () => {
    const body = Buffer.from(JSON.stringify(track({ big: 'x'.repeat(BODY_LIMIT * 8) })));
    for (let i = 0; i < 5; i += 1) {
      const r = await fetch(`${intake.url}/track`, { method: 'POST', headers: browser, body });
      expect(r.status).toBe(413);
      expect(((await r.json()) as { error: string }).error).toBe(`body: must be at most ${BODY_LIMIT} bytes`);
      const head = `POST /track HTTP/1.1\r\nHost: x\r\n${Object.entries(browser).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Content-Length: ${body.length}\r\n\r\n`;
      const answer = await writeThenRead(intake.url, head, body);
      expect(status(answer)).toBe(413);
      expect(errorOf(answer)).toBe(`body: must be at most ${BODY_LIMIT} bytes`);
    }
  });

  it('answers a preflight from a foreign origin with 403 naming the origin', async () => {
    const r = await intake.app.inject({
      method: 'OPTIONS',
      url: '/track',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,openpanel-client-id' },
    });
    expect(r.statusCode).toBe(403);
    expect(r.json()).toEqual({ error: 'origin: https://evil.example is not allowed for any client id' });
  });

  it('names the field in the 431 of oversized headers, the 400 of broken framing and of a missing Host', async () => {
    const huge = await rawRequest(intake.url, `POST /track HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(70_000)}\r\n\r\n`);
    expect(status(huge)).toBe(431);
    expect(errorOf(huge)).toMatch(/^headers: /);
    const broken = await rawRequest(intake.url, 'POST /track HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n');
    expect(status(broken)).toBe(400);
    expect(errorOf(broken)).toMatch(/^request: /);
    const hostless = await rawRequest(intake.url, 'POST /track HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
    expect(status(hostless)).toBe(400);
    expect(errorOf(hostless)).toMatch(/^host: /);
  });

  it('takes the Bearer scheme in any case', async () => {
    const r = await intake.app.inject({ method: 'POST', url: '/v1/events', headers: { ...native, authorization: `bearer ${SECRET}` }, payload: '[]' });
    expect(r.statusCode).toBe(200);
  });

  it('behind a trusted proxy takes the address that proxy added, validates it, and ignores headers a client can set', async () => {
    await queue.drain();
    const headers = {
      ...browser,
      'x-forwarded-for': '6.6.6.6, 198.51.100.7',
      'x-client-ip': '9.9.9.9',
      'cf-ipcountry': 'zz',
    };
    expect((await proxied.app.inject({ method: 'POST', url: '/track', headers, payload: JSON.stringify(track()) })).statusCode).toBe(200);
    const bad = { ...browser, 'x-forwarded-for': '<script>not-an-ip', 'cf-ipcountry': 'DE' };
    expect((await proxied.app.inject({ method: 'POST', url: '/track', headers: bad, payload: JSON.stringify(track()) })).statusCode).toBe(200);
    const events = await queued();
    const first = events.find((e) => e.country === undefined);
    const second = events.find((e) => e.country !== undefined);
    expect(first).toMatchObject({ ip: '198.51.100.7' });
    expect(first?.country).toBeUndefined();
    // the address is no IP: the socket's peer is the client as far as the server can tell
    expect(second?.ip).toBe('127.0.0.1');
    expect(second).toMatchObject({ country: 'DE' });
  });
});

describe('bounded answers while Redis is frozen', () => {
  it('answers every request within ENQUEUE_TIMEOUT_MS and a margin, also one queued behind a batch that is timing out', async () => {
    const server = redis.server;
    if (!server) return; // TEST_REDIS_URL: a server this test must not freeze
    // earlier traffic: salts cached, connections busy
    for (let i = 0; i < 5; i += 1) await intake.app.inject({ method: 'POST', url: '/track', headers: { ...browser, 'user-agent': `${CHROME} v${i}` }, payload: JSON.stringify(track()) });
    server.pause();
    try {
      const timed = async (payload: unknown, headers: Record<string, string> = browser, url = '/track'): Promise<[number, number]> => {
        const started = Date.now();
        const r = await intake.app.inject({ method: 'POST', url, headers, payload: JSON.stringify(payload) });
        return [r.statusCode, Date.now() - started];
      };
      const given = (i: number) => track({ __deviceId: `d${i}`, __sessionId: `s${i}` });
      // a session lookup and a batch go out and hang; the next requests arrive while they are on their way
      const first = [timed(track(), { ...browser, 'user-agent': `${CHROME} v2` }), timed(given(0))];
      await new Promise((r) => setTimeout(r, 200));
      const answers = await Promise.all([
        ...first,
        timed(given(1)),
        timed(track(), { ...browser, 'user-agent': `${CHROME} fresh` }),
        timed(track(), { ...browser, 'user-agent': `${CHROME} v1` }),
        timed([{ name: 'x', createdAt: Date.now(), userAgent: CHROME, ip: '203.0.113.200' }], native, '/v1/events'),
      ]);
      expect(answers.map(([s]) => s)).toEqual([503, 503, 503, 503, 503, 503]);
      for (const [, ms] of answers) expect(ms).toBeLessThan(config.enqueueTimeoutMs + 500);
    } finally {
      server.resume();
    }
  });
});
