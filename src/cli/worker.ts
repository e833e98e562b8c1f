import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { observeScripts } from '../buffer/scripts.js';
import { openClickHouse, type ClickHouse } from '../clickhouse/client.js';
import { migrate } from '../clickhouse/migrate.js';
import { loadConfig, redactUrl } from '../config.js';
import { Flusher, flusherOptions } from '../flush/flusher.js';
import { faultsFromEnv } from '../ops/faults.js';
import { createLogger } from '../ops/log.js';
import { Metrics, serveHealth } from '../ops/metrics.js';
import { connectRedis, redisTarget } from '../ops/redis.js';
import { checkRedisSafety } from '../ops/redis-safety.js';
import { WorkerService, type Role } from '../queue/worker-service.js';
import { flusherOwner } from './context.js';
import { choice, int } from './flags.js';

/** How long after SHUTDOWN_TIMEOUT_MS a stopping worker may take to close its clients before it exits anyway. */
export const SHUTDOWN_MARGIN_MS = 3_000;

export function registerWorker(program: Command): void {
  program
    .command('worker')
    .description('consume BullMQ jobs into the session buffer, sweep, and flush to ClickHouse (stop with SIGTERM)')
    .option('--role <role>', 'all: everything; ingest: jobs + sweeping; flush: sweeping + ClickHouse inserts', choice<Role>('all', 'ingest', 'flush'), 'all' as Role)
    .option('--concurrency <n>', 'jobs processed at once (WORKER_CONCURRENCY)', int(1, 1_000))
    .option('--allow-eviction', 'run even if Redis may evict keys (loses events under memory pressure)', false)
    .action(async (opts: { role: Role; concurrency?: number; allowEviction: boolean }) => {
      const role = opts.role;
      const base = loadConfig(process.env);
      const config = opts.concurrency ? { ...base, workerConcurrency: opts.concurrency } : base;
      const log = createLogger(config.logLevel).child({ component: 'worker', role });
      const metrics = new Metrics();
      observeScripts((script, seconds) => metrics.scriptSeconds.observe({ script }, seconds));

      const faults = faultsFromEnv(process.env);
      if (faults) log.warn({ faults: faults.description }, 'fault hooks enabled (EVENT_LENS_FAULTS): for the chaos tests only');
      if (role !== 'flush' && config.graceMs < config.workerLockMs * 1.5) {
        log.warn(
          { graceMs: config.graceMs, workerLockMs: config.workerLockMs },
          'GRACE_MS is shorter than the time a crashed worker\'s jobs wait before they are retried (about 1.5 x WORKER_LOCK_MS): their events may arrive after their neighbours were written and be counted late',
        );
      }
      const redis = await connectRedis(redisTarget(config));
      await checkRedisSafety(redis, { allowEviction: opts.allowEviction, log });
      let ch: ClickHouse | undefined;
      if (role !== 'ingest') {
        ch = await openClickHouse(config, { serve: true });
        await migrate(ch, { retentionDays: config.retentionDays, cluster: config.clickhouseCluster });
      }
      const buffer = new SessionBuffer(redis, config);
      const flusher = ch
        ? new Flusher(redis, buffer, ch, { ...flusherOptions(config, flusherOwner(), metrics), ...(faults ? { faults } : {}) })
        : undefined;
      const service = new WorkerService({ config, role, buffer, ...(flusher ? { flusher } : {}), metrics, log, redis: redisTarget(config) });
      const health =
        config.metricsPort > 0
          ? await serveHealth(metrics, config.metricsPort, async () => {
              if (service.state === 'stopping' || service.state === 'stopped') return false;
              await redis.ping();
              return ch ? (await ch.client.ping()).success : true;
            })
          : undefined;
      await service.start();
      log.info(
        { redis: redactUrl(config.redisUrl), redisCluster: config.redisCluster, clickhouse: ch?.kind ?? 'none', metrics: health?.url, concurrency: config.workerConcurrency, shards: config.bufferShards },
        'worker started',
      );

      let signals = 0;
      await new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals): void => {
          signals += 1;
          if (signals > 1) {
            log.warn({ signal }, 'second signal: exiting now');
            process.exit(1);
          }
          log.info({ signal, deadlineMs: config.shutdownTimeoutMs }, 'shutting down');
          resolve();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      // nothing runs past the deadline: a stop that cannot finish (a dead dependency) exits 1, leaving its work in Redis
      const hard = setTimeout(() => {
        log.error({ deadlineMs: config.shutdownTimeoutMs, marginMs: SHUTDOWN_MARGIN_MS }, 'shutdown did not finish by the deadline: exiting; unflushed rows stay in Redis');
        process.exit(1);
      }, config.shutdownTimeoutMs + SHUTDOWN_MARGIN_MS);
      hard.unref();
      const result = await service.stop();
      redis.disconnect();
      await Promise.race([Promise.all([health?.close(), ch?.close()]), sleep(SHUTDOWN_MARGIN_MS)]);
      log.info(result, 'worker stopped');
      // 1 when work was left behind for the next process
      process.exit(result.timedOut ? 1 : 0);
    });
}
