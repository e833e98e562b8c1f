/**
 * Redis connections. `rediss://` URLs use TLS; user and password come from
 * the URL. With `cluster`, the URL names one node of a Redis Cluster and the
 * client discovers the others (every buffer script touches keys of one shard
 * only, and a shard's keys share a {hash tag}, so no call is cross-slot).
 * `connectRedis` fails fast with a message naming the (redacted) URL instead
 * of letting a command hang while ioredis retries.
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from '../config.js';
import { EventLensError } from '../errors.js';

/** A single Redis or a Redis Cluster: the buffer, flusher and worker take either. */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL, and whether it names a cluster node. */
export interface RedisTarget {
  url: string;
  cluster?: boolean;
}

/** The Redis a config names. */
export const redisTarget = (config: { redisUrl: string; redisCluster: boolean }): RedisTarget => ({ url: config.redisUrl, cluster: config.redisCluster });

const target = (t: RedisTarget | string): RedisTarget => (typeof t === 'string' ? { url: t } : t);

/** Connection options from a redis:// or rediss:// URL (credentials, TLS, database). */
function optionsFromUrl(url: string): RedisOptions & { host: string; port: number } {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: { servername: u.hostname } } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
  };
}

export function createRedis(where: RedisTarget | string, extra: RedisOptions = {}): RedisClient {
  const t = target(where);
  const common: RedisOptions = { lazyConnect: true, enableAutoPipelining: true, maxRetriesPerRequest: 20, connectionName: 'event-lens', ...extra };
  if (!t.cluster) return new Redis(t.url, common);
  const { host, port, ...auth } = optionsFromUrl(t.url);
  return new Cluster([{ host, port }], {
    lazyConnect: true,
    enableAutoPipelining: true,
    redisOptions: { ...auth, ...common },
    // a node that restarts or fails over answers MOVED / TRYAGAIN for a moment
    retryDelayOnTryAgain: 200,
    retryDelayOnClusterDown: 300,
  });
}

/**
 * The `connection` option for BullMQ: options for a single Redis (BullMQ
 * creates its own clients), or a Cluster client of its own for a cluster.
 * Workers wait for Redis indefinitely (BullMQ requires it); producers fail
 * fast so the ingestion API can answer "retry later".
 */
export function bullConnection(
  where: RedisTarget | string,
  role: 'worker' | 'producer' = 'worker',
): { url: string; maxRetriesPerRequest?: null; enableOfflineQueue?: boolean } | Cluster {
  const t = target(where);
  // a producer's commands fail at once while Redis is away instead of waiting in ioredis's offline queue
  const retries = role === 'worker' ? { maxRetriesPerRequest: null } : { enableOfflineQueue: false };
  if (!t.cluster) return { url: t.url, ...retries };
  return createRedis(t, { ...retries, enableAutoPipelining: false, lazyConnect: false }) as Cluster;
}

/** Closes what `bullConnection` made once BullMQ is done with it: BullMQ never closes a client it was given. */
export function releaseBullConnection(connection: ReturnType<typeof bullConnection>): void {
  if (connection instanceof Cluster) connection.disconnect();
}

/** Connects and checks the server answers; throws a clear error otherwise. */
export async function connectRedis(where: RedisTarget | string, timeoutMs = 5_000): Promise<RedisClient> {
  const t = target(where);
  const redis = createRedis(t);
  // the real cause (WRONGPASS, NOAUTH, a TLS error) arrives as an 'error' event;
  // the failed command itself only says "Connection is closed"
  let cause: Error | undefined;
  let refused: (err: Error) => void = () => {};
  const authFailed = new Promise<never>((_, reject) => {
    refused = reject;
  });
  authFailed.catch(() => {});
  redis.on('error', (err: Error) => {
    cause ??= err;
    // wrong credentials will not get better by retrying: fail now
    if (/WRONGPASS|NOAUTH|NOPERM/.test(err.message)) refused(err);
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect().then(() => redis.ping()),
      authFailed,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return redis;
  } catch (err) {
    redis.disconnect();
    const what = t.cluster ? 'the Redis Cluster' : 'Redis';
    const reason = cause?.message ?? (err as Error).message;
    const hint = /WRONGPASS|NOAUTH|invalid password|invalid username/i.test(reason) ? ' (check the user and password in REDIS_URL)' : '';
    throw new EventLensError('REDIS_UNREACHABLE', `cannot use ${what} at ${redactUrl(t.url)}: ${reason}${hint}`, { cause: err });
  } finally {
    clearTimeout(timer);
  }
}

/** The masters to ask for server-wide facts (INFO, CONFIG, SCAN): the client itself, or every cluster master. */
export function masters(redis: RedisClient): Redis[] {
  return redis instanceof Cluster ? redis.nodes('master') : [redis];
}

/** Deletes the keys under a prefix (SCAN + UNLINK, on every master): only what the caller wrote, never FLUSHALL. */
export async function deleteByPrefix(redis: RedisClient, prefix: string): Promise<void> {
  for (const node of masters(redis)) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 2_000);
      cursor = next;
      if (keys.length === 0) continue;
      // on a cluster one page's keys live in different slots: one UNLINK each (auto-pipelined)
      if (redis instanceof Cluster) await Promise.all(keys.map((k) => node.unlink(k)));
      else await node.unlink(...keys);
    } while (cursor !== '0');
  }
}
