/**
 * Builds and runs the ingestion server from a Config: its own Redis client
 * (no offline queue, commands bounded by ENQUEUE_TIMEOUT_MS, so a dead Redis
 * gives 503s, never hanging requests), the producer, the coalescer, the gate,
 * identity and, when GEOIP_DB is set, the MaxMind reader. The CLI's `serve`
 * and `bench http` both start it through here.
 *
 * Lifecycle: starting --listen--> serving --stop()--> closing --> closed.
 * stop(): fastify stops accepting and finishes in-flight requests (new ones on
 * kept-alive sockets get 503) while the coalescer sends what it holds at once
 * (no window from then on) and waits for its batches; then the producer and
 * Redis close.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import { open, type CityResponse, type Reader } from 'maxmind';
import { IntakeKeys } from '../buffer/keys.js';
import { SessionBuffer } from '../buffer/session-buffer.js';
import type { Config } from '../config.js';
import { EventLensError } from '../errors.js';
import type { Logger } from '../ops/log.js';
import { createRedis, redisTarget, type RedisClient } from '../ops/redis.js';
import { Producer, producerOptions, type IncomingEvent } from '../queue/producer.js';
import { Coalescer } from '../ops/coalescer.js';
import { IntakeGate } from './gate.js';
import { Identity } from './identity.js';
import { IntakeMetrics } from './metrics.js';
import type { Projects } from './projects.js';
import { buildIntakeServer } from './server.js';

export interface IntakeService {
  app: FastifyInstance;
  url: string;
  metrics: IntakeMetrics;
  /** Reads the backlog and Redis state now instead of at the next tick (tests, and `bench http`). */
  gateCheck(): Promise<void>;
  stop(): Promise<void>;
}

export async function startIntake(
  config: Config,
  projects: Projects,
  log: Logger,
  options: { host?: string; benchRoutes?: boolean } = {},
): Promise<IntakeService> {
  const redis: RedisClient = createRedis(redisTarget(config), { enableOfflineQueue: false, commandTimeout: config.enqueueTimeoutMs, maxRetriesPerRequest: 1, enableAutoPipelining: false });
  let redisDown = false;
  redis.on('error', (err: Error) => {
    if (!redisDown) log.warn({ err }, 'Redis unreachable: answering 503 until it is back');
    redisDown = true;
  });
  redis.on('ready', () => {
    if (redisDown) log.info('Redis reachable again');
    redisDown = false;
  });
  // wait a bounded time for Redis, so a healthy start answers its first request; a dead Redis
  // does not stop the server starting: it answers 503 until Redis is back (ioredis keeps reconnecting)
  const connected = redis.connect().then(
    () => true,
    () => false,
  );
  await Promise.race([connected, sleep(config.enqueueTimeoutMs)]);

  const metrics = new IntakeMetrics();
  const producer = new Producer(producerOptions(config, (message) => log.warn(message)));
  const coalescer = new Coalescer<IncomingEvent>(
    async (events) => {
      metrics.batchEvents.observe(events.length);
      await producer.enqueueBatch(events);
    },
    { maxEvents: config.intakeBatchMaxEvents, windowMs: config.intakeBatchWindowMs },
  );
  const buffer = new SessionBuffer(redis, config);
  const gate = new IntakeGate({
    readBacklog: async () => (await buffer.backlog()).reduce((n, b) => n + b.ready + b.inBatch, 0),
    highWatermark: config.backlogHighWatermark,
    lowWatermark: config.backlogLowWatermark,
    onChange: (state, backlog) => log.warn({ state, backlogRows: backlog }, 'intake gate'),
  });
  const geoip = config.geoipDb ? await openGeoip(config.geoipDb) : undefined;
  const identity = new Identity(redis, new IntakeKeys(config.keyPrefix), config.sessionTimeoutMs, { maxEvents: config.intakeBatchMaxEvents, windowMs: config.intakeBatchWindowMs });
  const server = buildIntakeServer({
    projects,
    identity,
    coalescer,
    gate,
    metrics,
    log,
    maxFutureMs: config.maxFutureMs,
    trustProxy: config.trustProxy,
    geoip,
    bodyLimit: config.intakeMaxBodyBytes,
    maxRequestEvents: config.intakeMaxRequestEvents,
    benchRoutes: options.benchRoutes ?? false,
  });
  const { app } = server;
  await gate.start();
  const address = await app.listen({ port: config.port, host: options.host ?? '0.0.0.0' });
  const port = new URL(address).port;
  let stopping: Promise<void> | undefined;
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    metrics,
    gateCheck: () => gate.check(),
    stop: () =>
      (stopping ??= (async () => {
        // stop accepting, and send what is held now: in-flight requests wait for their batch
        const closed = server.close();
        await coalescer.flush();
        await closed;
        await coalescer.flush();
        gate.stop();
        await producer.close();
        redis.disconnect();
      })()),
  };
}

async function openGeoip(file: string): Promise<Reader<CityResponse>> {
  try {
    return await open<CityResponse>(file);
  } catch (err) {
    throw new EventLensError('GEOIP_DB_INVALID', `GEOIP_DB=${file}: cannot open it as a MaxMind database (${(err as Error).message})`, { cause: err });
  }
}
