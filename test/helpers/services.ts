/**
 * Where integration tests get their servers, in this order:
 *
 * Redis
 *   1. TEST_REDIS_URL: a server you run; each test file uses its own key prefix
 *      and never flushes it (fault tests that restart Redis are skipped).
 *   2. `redis-server` on PATH: a private server per test file on a free port.
 *   3. testcontainers (`redis:7`), where a Docker engine exists.
 *
 * ClickHouse
 *   1. TEST_CLICKHOUSE_URL: a server; each test file creates its own database.
 *   2. TEST_CLICKHOUSE=container: testcontainers `clickhouse/clickhouse-server`.
 *   3. Default: the embedded chDB engine in a temporary directory of this process.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { ulid } from 'ulid';
import { afterAll, beforeAll } from 'vitest';
import { openClickHouse, type ClickHouse } from '../../src/clickhouse/client.js';
import { migrate } from '../../src/clickhouse/migrate.js';
import { startRedisServer, type RedisServerHandle } from '../../src/ops/redis-server.js';

export interface TestRedis {
  url: string;
  /** Key prefix unique to this test file. */
  prefix: string;
  /** The private server, when this file started one (fault tests need it). */
  server?: RedisServerHandle;
  stop(): Promise<void>;
}

function onPath(binary: string): boolean {
  try {
    execFileSync('which', [binary], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export async function testRedis(args: string[] = []): Promise<TestRedis> {
  const prefix = `t${ulid().slice(-10).toLowerCase()}`;
  const external = process.env.TEST_REDIS_URL;
  if (external) return { url: external, prefix, stop: async () => {} };
  if (onPath('redis-server')) {
    const server = await startRedisServer({ args });
    return { url: server.url, prefix, server, stop: () => server.stop() };
  }
  const { GenericContainer } = await import('testcontainers');
  const container = await new GenericContainer('redis:7').withCommand(['redis-server', ...args]).withExposedPorts(6379).start();
  return {
    url: `redis://${container.getHost()}:${container.getMappedPort(6379)}`,
    prefix,
    stop: async () => {
      await container.stop();
    },
  };
}

export interface TestClickHouse {
  ch: ClickHouse;
  database: string;
  stop(): Promise<void>;
}

/** A migrated database of its own for one test file. */
export async function testClickHouse(): Promise<TestClickHouse> {
  const database = `test_${ulid().slice(-12).toLowerCase()}`;
  let url = process.env.TEST_CLICKHOUSE_URL;
  let stopContainer: (() => Promise<unknown>) | undefined;
  if (!url && process.env.TEST_CLICKHOUSE === 'container') {
    const { GenericContainer } = await import('testcontainers');
    const c = await new GenericContainer('clickhouse/clickhouse-server:latest').withExposedPorts(8123).start();
    url = `http://${c.getHost()}:${c.getMappedPort(8123)}`;
    stopContainer = () => c.stop();
  }
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-ch-'));
  const ch = await openClickHouse({ clickhouseUrl: url, dataDir, clickhouseDatabase: database });
  await migrate(ch, { retentionDays: 0 });
  return {
    ch,
    database,
    stop: async () => {
      if (url) await ch.client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      await ch.close();
      await stopContainer?.();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface Services {
  server: TestRedis;
  redis: Redis;
  clickhouse: TestClickHouse;
}

/**
 * Starts this file's servers before its tests and stops them after: a private
 * Redis (with an ioredis client) and, when asked, a migrated ClickHouse database.
 * The returned object is filled in by beforeAll.
 */
export function useServices(options: { clickhouse: boolean }): Services {
  const services = {} as Services;
  beforeAll(async () => {
    services.server = await testRedis();
    services.redis = new Redis(services.server.url);
    if (options.clickhouse) services.clickhouse = await testClickHouse();
  });
  afterAll(async () => {
    services.redis?.disconnect();
    await services.server?.stop();
    await services.clickhouse?.stop();
  });
  return services;
}
