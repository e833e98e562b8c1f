/**
 * Redis connections. `rediss://` URLs use TLS; user and password come from
 * the URL. `connectRedis` fails fast with a message naming the (redacted) URL
 * instead of letting a command hang while ioredis retries.
 */
import { Redis } from 'ioredis';
import { redactUrl } from '../config.ts';
import { EventLensError } from '../errors.ts';

export function createRedis(url: string): Redis {
  return new Redis(url, {
    lazyConnect: true,
    enableAutoPipelining: true,
    maxRetriesPerRequest: 20,
    connectionName: 'event-lens',
  });
}

/** Connects and checks the server answers; throws a clear error otherwise. */
export async function connectRedis(url: string, timeoutMs = 5_000): Promise<Redis> {
  const redis = createRedis(url);
  redis.on('error', () => {
    // reported by the ping below (and reconnects are retried by ioredis)
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return redis;
  } catch (err) {
    redis.disconnect();
    throw new EventLensError('REDIS_UNREACHABLE', `cannot use Redis at ${redactUrl(url)}: ${(err as Error).message}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** Deletes the keys under a prefix (SCAN + UNLINK): only what the caller wrote, never FLUSHALL. */
export async function deleteByPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 2_000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}
