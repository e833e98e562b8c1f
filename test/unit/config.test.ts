import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('loadConfig', () => {
  it('applies the documented defaults', () => {
    const c = loadConfig({}, '/srv');
    expect(c).toMatchObject({
      redisUrl: 'redis://127.0.0.1:6379',
      clickhouseUrl: undefined,
      dataDir: '/srv/.event-lens',
      clickhouseDatabase: 'event_lens',
      graceMs: 10_000,
      sessionTimeoutMs: 1_800_000,
      dedupWindowMs: 1_800_000,
      flushMaxRows: 10_000,
      flushIntervalMs: 1_000,
    });
  });

  it('collects every problem into one error naming variable, value and expected form', () => {
    let error: ConfigError | undefined;
    try {
      loadConfig({ BUFFER_SHARDS: 'many', GRACE_MS: '-1', REDIS_URL: 'http://x', CLICKHOUSE_DATABASE: 'bad-name' });
    } catch (err) {
      error = err as ConfigError;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(error?.problems).toHaveLength(4);
    expect(error?.message).toContain('BUFFER_SHARDS="many": expected an integer from 1 to 1024');
    expect(error?.message).toContain('GRACE_MS="-1": expected an integer from 0 to 3600000');
    expect(error?.message).toContain('REDIS_URL=http://x/: expected a URL starting with redis:// or rediss://');
  });

  it('never shows a password in its messages', () => {
    expect(() => loadConfig({ CLICKHOUSE_URL: 'ftp://user:s3cret@host' })).toThrow(/ftp:\/\/user:\*\*\*@host/);
    expect(() => loadConfig({ CLICKHOUSE_URL: 'ftp://user:s3cret@host' })).not.toThrow(/s3cret/);
  });

  it('accepts rediss:// URLs with credentials and a server URL for ClickHouse', () => {
    const c = loadConfig({ REDIS_URL: 'rediss://app:pw@redis.internal:6380', CLICKHOUSE_URL: 'https://ch.internal:8443' });
    expect(c.redisUrl).toBe('rediss://app:pw@redis.internal:6380');
    expect(c.clickhouseUrl).toBe('https://ch.internal:8443');
  });

  it('refuses a buffer TTL shorter than timeout plus grace', () => {
    expect(() => loadConfig({ BUFFER_TTL_MS: '60000' })).toThrow(/BUFFER_TTL_MS=60000: expected at least/);
  });

  it('reads REDIS_CLUSTER, defaults the queue prefix to a hash tag there, and refuses a prefix without one', () => {
    expect(loadConfig({ REDIS_CLUSTER: 'true' })).toMatchObject({ redisCluster: true, queuePrefix: '{bull}' });
    expect(loadConfig({})).toMatchObject({ redisCluster: false, queuePrefix: 'bull' });
    expect(() => loadConfig({ REDIS_CLUSTER: '1', QUEUE_PREFIX: 'bull' })).toThrow(/QUEUE_PREFIX="bull": on a Redis Cluster it must contain a hash tag/);
    expect(() => loadConfig({ REDIS_CLUSTER: 'maybe' })).toThrow(/REDIS_CLUSTER="maybe": expected true or false/);
  });

  it('keeps the default job lock short enough for the grace to cover a crashed worker', () => {
    const c = loadConfig({});
    expect(c.workerLockMs * 1.5).toBeLessThan(c.graceMs);
    expect(c.workerMaxStalled).toBeGreaterThan(1);
  });
});
