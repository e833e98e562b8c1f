/**
 * Start-up checks of the Redis a worker is about to trust with events.
 * An evicting maxmemory-policy would silently delete held sessions, ready
 * rows and queued jobs under memory pressure (BullMQ requires noeviction for
 * the same reason), so the worker refuses it unless told otherwise. AOF off
 * means a Redis crash loses everything since the last snapshot: a warning.
 */
import type { Redis } from 'ioredis';
import { masters, type RedisClient } from './redis.js';
import { EventLensError } from '../errors.js';
import type { Logger } from './log.js';

async function maxmemoryPolicy(redis: Redis): Promise<string> {
  try {
    const reply = (await redis.config('GET', 'maxmemory-policy')) as string[];
    if (reply[1]) return reply[1];
  } catch {
    // CONFIG may be disabled (managed Redis); INFO still tells
  }
  return /maxmemory_policy:(\S+)/.exec(await redis.info('memory'))?.[1] ?? 'unknown';
}

/** Checks every master (one, or each master of a cluster). */
export async function checkRedisSafety(client: RedisClient, options: { allowEviction: boolean; log: Logger }): Promise<void> {
  for (const redis of masters(client)) {
    const node = `${redis.options.host ?? '?'}:${String(redis.options.port ?? '?')}`;
    const policy = await maxmemoryPolicy(redis);
    if (policy !== 'noeviction') {
      const message =
        `Redis maxmemory-policy is "${policy}" on ${node}: under memory pressure Redis would evict held sessions, ready rows and queued jobs, ` +
        'losing events without a trace. Set "maxmemory-policy noeviction" (redis.conf, or CONFIG SET maxmemory-policy noeviction), ' +
        'or start with --allow-eviction to run anyway.';
      if (!options.allowEviction) throw new EventLensError('REDIS_EVICTING', message);
      options.log.warn({ policy, node }, 'running on an evicting Redis because --allow-eviction was given');
    }
    const aof = /aof_enabled:(\d)/.exec(await redis.info('persistence'))?.[1];
    if (aof === '0') {
      options.log.warn({ node }, 'Redis runs without AOF (appendonly no): a Redis crash loses what it held since its last snapshot; use appendonly yes, appendfsync everysec');
    }
  }
}
