/**
 * The intake's session decision under concurrency (issue 21, item 3): the
 * requests of one moment share script calls, and every visitor gets the
 * session it would get alone.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { IntakeKeys } from '../../../src/buffer/keys.js';
import { observeScripts } from '../../../src/buffer/scripts.js';
import { Identity } from '../../../src/intake/identity.js';
import { connectRedis } from '../../../src/ops/redis.js';
import { startCluster } from '../../chaos/cluster.js';
import { useServices } from '../../helpers/services.js';

const services = useServices({ clickhouse: false });
const T = Date.UTC(2026, 11, 1, 10);
const visitor = (i: number) => ({ userAgent: `Mozilla/5.0 visitor ${i}`, ip: `198.51.100.${i % 250}`, origin: 'https://shop.test', projectId: 'p1' });

afterEach(() => observeScripts(undefined));

describe('Identity', () => {
  it('decides the sessions of concurrent requests in a few script calls, the same visitor twice in one batch keeping one session', async () => {
    const identity = new Identity(services.redis, new IntakeKeys(`${services.server.prefix}-batch`), 60_000);
    // the salts exist before the measured burst
    await identity.resolve({ fingerprint: visitor(999), atMs: T, nowMs: T });
    const calls: string[] = [];
    observeScripts((script) => calls.push(script));
    const asks = [...Array.from({ length: 50 }, (_, i) => visitor(i)), visitor(7), visitor(7)];
    const ids = await Promise.all(asks.map((fingerprint, i) => identity.resolve({ fingerprint, atMs: T + i, nowMs: T + i })));
    expect(calls.length).toBeLessThanOrEqual(3);
    expect(new Set(ids.slice(0, 50).map((x) => x.sessionId)).size).toBe(50);
    expect(ids[50]).toEqual(ids[7]);
    expect(ids[51]).toEqual(ids[7]);
    // what a lone request finds afterwards is what the batch recorded
    observeScripts(undefined);
    for (const i of [0, 7, 49]) {
      expect(await identity.resolve({ fingerprint: visitor(i), atMs: T + 1_000, nowMs: T + 1_000 })).toEqual(ids[i]);
    }
  });

  it('under Redis Cluster, calls once per hash tag of the batch (a script call cannot span slots)', async () => {
    const nodes = await startCluster(3);
    const redis = await connectRedis({ url: `redis://127.0.0.1:${nodes[0]?.port}`, cluster: true });
    try {
      const identity = new Identity(redis, new IntakeKeys('cl'), 60_000);
      const calls: string[] = [];
      observeScripts((script) => calls.push(script));
      const asks = [...Array.from({ length: 40 }, (_, i) => visitor(i)), visitor(3)];
      const ids = await Promise.all(asks.map((fingerprint, i) => identity.resolve({ fingerprint, atMs: T + i, nowMs: T + i })));
      expect(new Set(ids.slice(0, 40).map((x) => x.sessionId)).size).toBe(40);
      expect(ids[40]).toEqual(ids[3]);
      expect(calls.length).toBeGreaterThan(1);
    } finally {
      redis.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    }
  });
});
