/**
 * Builds the clients a command needs from the config; the only place (with
 * the worker entry point) where clients are created.
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
