/**
 * Server-side tracking as OpenPanel's users do it: a Node backend with the
 * real `@openpanel/sdk` and the client's secret, forwarding each visitor's user
 * agent (`op.api.addHeader('user-agent', …)`) and IP (`__ip`), over a real
 * socket to `serve`, with a real redis-server. Server-ness is decided from the
 * user agent, not from the secret: a forwarded browser user agent gets what
 * that visitor's browser would get, the SDK's own user agent what a server
 * gets.
 */
import { OpenPanel } from '@openpanel/sdk';
import { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config.js';
import { parseProjects } from '../../../src/intake/projects.js';
import { startIntake, type IntakeService } from '../../../src/intake/service.js';
import { createLogger } from '../../../src/ops/log.js';
import { testRedis, type TestRedis } from '../../helpers/services.js';

const SAFARI = 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1';
const SECRET = 'server-secret-0123456789';
const SITE = 'https://shop.example';

let redis: TestRedis;
let intake: IntakeService;
let queue: Queue;

async function queued(): Promise<Record<string, unknown>[]> {
  const jobs = await queue.getJobs(['waiting']);
  return jobs.flatMap((j) => (j.data as { events: Record<string, unknown>[] }).events).sort((a, b) => String(a.createdAt).localeCompare(String(b.createdAt)));
}

/** A backend's SDK client forwarding one visitor's user agent. */
function backendFor(userAgent?: string): OpenPanel {
  const op = new OpenPanel({ clientId: 'server-client', clientSecret: SECRET, apiUrl: intake.url });
  if (userAgent) op.api.addHeader('user-agent', userAgent);
  return op;
}

beforeAll(async () => {
  redis = await testRedis();
  const config = loadConfig({ REDIS_URL: redis.url, BUFFER_KEY_PREFIX: redis.prefix, QUEUE_NAME: `${redis.prefix}-q`, INTAKE_BATCH_WINDOW_MS: '2', PORT: '0' });
  intake = await startIntake(config, parseProjects(JSON.stringify([{ projectId: 'shop', clientId: 'server-client', clientSecret: SECRET }]), 'test'), createLogger('silent'), { host: '127.0.0.1' });
  queue = new Queue(config.queueName, { connection: { url: redis.url } });
});

afterAll(async () => {
  await intake?.stop();
  await queue?.close();
  await redis?.stop();
});

describe('@openpanel/sdk from a backend that forwards its visitors', () => {
  it('gives a forwarded browser user agent and __ip a device, a session and device fields, the same across requests', async () => {
    await queue.drain();
    const op = backendFor(SAFARI);
    await op.track('screen_view', { __path: `${SITE}/shoes`, __ip: '203.0.113.7' });
    await op.track('screen_view', { __path: `${SITE}/cart`, __ip: '203.0.113.7' });
    const events = await queued();
    expect(events).toHaveLength(2);
    const [first, second] = events as [Record<string, unknown>, Record<string, unknown>];
    expect(first).toMatchObject({ name: 'screen_view', path: '/shoes', origin: SITE, ip: '203.0.113.7', userAgent: SAFARI, os: 'iOS', browser: 'Mobile Safari', device: 'mobile', brand: 'Apple', model: 'iPhone' });
    expect(first.deviceId).toMatch(/^[0-9a-f]{32}$/);
    expect(first.sessionId).toMatch(/^[0-9A-Z]{26}$/);
    expect(second).toMatchObject({ deviceId: first.deviceId, sessionId: first.sessionId, path: '/cart' });
    // __ip is consumed, not stored as a property
    expect(first.properties).toEqual({});
    // another visitor of the same backend is another device and session
    await backendFor(SAFARI).track('screen_view', { __path: `${SITE}/`, __ip: '203.0.113.8' });
    const third = (await queued()).find((e) => e.ip === '203.0.113.8');
    expect(third?.deviceId).not.toBe(first.deviceId);
    expect(third?.sessionId).not.toBe(first.sessionId);
  });

  it('lets __os, __osVersion, __browser, __browserVersion, __device, __brand and __model win over the parsed user agent', async () => {
    await queue.drain();
    await backendFor(SAFARI).track('screen_view', { __path: `${SITE}/`, __ip: '203.0.113.9', __os: 'visionOS', __osVersion: '2.0', __browser: 'Safari', __browserVersion: '18', __device: 'headset', __brand: 'Apple', __model: 'Vision Pro' });
    const [event] = await queued();
    expect(event).toMatchObject({ os: 'visionOS', osVersion: '2.0', browser: 'Safari', browserVersion: '18', device: 'headset', brand: 'Apple', model: 'Vision Pro', properties: {} });
  });

  it('answers the ids the server derived, so the SDK keeps them', async () => {
    const r = await fetch(`${intake.url}/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'openpanel-client-id': 'server-client', 'openpanel-client-secret': SECRET, 'user-agent': SAFARI },
      body: JSON.stringify({ type: 'track', payload: { name: 'screen_view', properties: { __path: `${SITE}/`, __ip: '203.0.113.10' } } }),
    });
    const ids = (await r.json()) as { deviceId: string; sessionId: string };
    expect(ids.deviceId).toMatch(/^[0-9a-f]{32}$/);
    expect(ids.sessionId).toMatch(/^[0-9A-Z]{26}$/);
  });

  it("treats the SDK's own user agent (a program's) as a server: no derived ids, device, geo or IP fields, as before", async () => {
    await queue.drain();
    await backendFor().track('signup', { __ip: '203.0.113.11', plan: 'pro' });
    const [event] = await queued();
    expect(event).toMatchObject({ name: 'signup', properties: { plan: 'pro' } });
    for (const field of ['deviceId', 'sessionId', 'ip', 'os', 'browser', 'device', 'userAgent']) expect(event?.[field], field).toBeUndefined();
  });

  it('drops a forwarded crawler user agent as a bot, as from a browser', async () => {
    await queue.drain();
    const r = await fetch(`${intake.url}/track`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'openpanel-client-id': 'server-client', 'openpanel-client-secret': SECRET, 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' },
      body: JSON.stringify({ type: 'track', payload: { name: 'screen_view', properties: { __path: `${SITE}/` } } }),
    });
    expect(r.status).toBe(202);
    expect(await queued()).toEqual([]);
  });
});
