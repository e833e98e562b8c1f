/**
 * Builds the clients a command needs from the config and closes them when it
 * is done: every command that reads or writes through the configured Redis or
 * ClickHouse gets them here (`worker` and `serve` build theirs in their own
 * entry points, `bench` against the private servers it starts).
 */
import os from 'node:os';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { openClickHouse, type ClickHouse } from '../clickhouse/client.js';
import { migrate } from '../clickhouse/migrate.js';
import type { Config } from '../config.js';
import { Flusher, flusherOptions } from '../flush/flusher.js';
import { connectRedis, redisTarget, type RedisClient } from '../ops/redis.js';

export interface Pipeline {
  redis: RedisClient;
  ch: ClickHouse;
  buffer: SessionBuffer;
  flusher: Flusher;
  close(): Promise<void>;
}

/** Runs fn with a ClickHouse client of the config (server or embedded), closed afterwards. */
export async function withClickHouse<T>(config: Config, fn: (ch: ClickHouse) => Promise<T>): Promise<T> {
  const ch = await openClickHouse(config);
  try {
    return await fn(ch);
  } finally {
    await ch.close();
  }
}

/** Runs fn with a Redis client of the config, disconnected afterwards. */
export async function withRedis<T>(config: Config, fn: (redis: RedisClient) => Promise<T>): Promise<T> {
  const redis = await connectRedis(redisTarget(config));
  try {
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

export function flusherOwner(): string {
  return `${os.hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
}

/**
 * Redis + ClickHouse (migrated) + buffer + flusher, as the replay and the demo
 * use them. `fresh` drops the database first (the demo's own database only).
 */
export async function openPipeline(config: Config, options: { fresh?: boolean } = {}): Promise<Pipeline> {
  const redis = await connectRedis(redisTarget(config));
  let ch: ClickHouse;
  try {
    ch = await openClickHouse(config);
    if (options.fresh) await ch.client.command({ query: `DROP DATABASE IF EXISTS ${config.clickhouseDatabase} SYNC` });
    await migrate(ch, { retentionDays: config.retentionDays, cluster: config.clickhouseCluster });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  const buffer = new SessionBuffer(redis, config);
  const flusher = new Flusher(redis, buffer, ch, flusherOptions(config, flusherOwner()));
  return {
    redis,
    ch,
    buffer,
    flusher,
    close: async () => {
      await flusher.release();
      await ch.close();
      redis.disconnect();
    },
  };
}
