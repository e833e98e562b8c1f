import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { ulid } from 'ulid';
import { benchBuffer, benchGrowth, type GrowthPoint } from '../bench/buffer-bench.ts';
import { benchFlush, type FlushBenchResult } from '../bench/flush-bench.ts';
import { benchStorage, rowsFor } from '../bench/storage-bench.ts';
import { benchWorker, type WorkerBenchResult } from '../bench/worker-bench.ts';
import { openClickHouse } from '../clickhouse/client.ts';
import { migrate } from '../clickhouse/migrate.ts';
import { loadConfig } from '../config.ts';
import { normalizeEvent } from '../event/normalize.ts';
import { generateEvents } from '../generate/model.ts';
import { connectRedis } from '../ops/redis.ts';
import { startRedisServer } from '../ops/redis-server.ts';
import { out, table } from './output.ts';

/** Mean events per generated session (measured on the model); used to size the run. */
const EVENTS_PER_SESSION = 8.4;

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'benchmarks, each next to its ceiling in the same run. pipeline (default): the buffer and the worker against per-event Lua and a ' +
        'no-op BullMQ worker, on a private redis-server. storage: the optimised schema and views against a naive table',
    )
    .argument('[suite]', 'pipeline | storage', 'pipeline')
    .option('--events <n>', 'events to generate (pipeline: 100 000, storage: 1 000 000)', (v) => Number(v))
    .option('--runs <n>', 'storage: timed runs per query (the median is reported)', (v) => Number(v), 5)
    .option('--quick', 'a short run (20 000 events)', false)
    .option('--json', 'print one JSON object', false)
    .option('--redis-url <url>', 'use this Redis instead of starting one (only keys under a unique prefix are written and removed)')
    .option('--worker-events <n>', 'events for the worker measurements', (v) => Number(v), 20_000)
    .action(async (suite: string, opts: { events?: number; runs: number; quick: boolean; json: boolean; redisUrl?: string; workerEvents: number }) => {
      if (suite === 'storage') {
        await storageSuite(opts);
        return;
      }
      if (suite !== 'pipeline') throw new Error(`bench ${JSON.stringify(suite)}: expected pipeline or storage`);
      const config = loadConfig(process.env);
      const target = opts.quick ? 20_000 : (opts.events ?? 100_000);
      const workerEvents = opts.quick ? 5_000 : opts.workerEvents;
      const server = opts.redisUrl ? undefined : await startRedisServer();
      const redis = await connectRedis(opts.redisUrl ?? (server as { url: string }).url);
      const bar = opts.json || !process.stderr.isTTY ? undefined : new SingleBar({ format: ' {step} [{bar}] {percentage}%', stream: process.stderr }, Presets.shades_classic);
      try {
        const generated = generateEvents({ sessions: Math.ceil(target / EVENTS_PER_SESSION), seed: 42 }).slice(0, target);
        const events = generated.map((e) => normalizeEvent(e, { receivedAtMs: Date.parse(e.createdAt), maxFutureMs: config.maxFutureMs }));
        bar?.start(100, 0, { step: 'generate' });
        const result = await benchBuffer(redis, events, { ...config, keyPrefix: `bench-${ulid()}` }, (step, f) => bar?.update(Math.round(f * 100), { step }));
        bar?.update(100, { step: 'worker' });
        const dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-bench-'));
        const ch = config.clickhouseUrl
          ? await openClickHouse({ ...config, clickhouseDatabase: `bench_${ulid().toLowerCase()}` })
          : await openClickHouse({ ...config, dataDir, clickhouseDatabase: 'bench' });
        let worker: WorkerBenchResult;
        let flush: FlushBenchResult;
        let growth: GrowthPoint[];
        let scriptP99Growth: number;
        try {
          await migrate(ch, { retentionDays: 0 });
          const url = opts.redisUrl ?? (server as { url: string }).url;
          worker = await benchWorker(redis, ch, { ...config, redisUrl: url }, generated.slice(0, workerEvents), (step) => bar?.update(100, { step }));
          bar?.update(100, { step: 'rawInsert + flush' });
          flush = await benchFlush(redis, ch, config, rowsFor(generated, config.sessionTimeoutMs).optimised);
          // last: filling Redis with a million sessions would disturb the measurements after it
          const levels = opts.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
          const template = events[0] as (typeof events)[number];
          growth = await benchGrowth(
            redis,
            { ...config, keyPrefix: `bench-growth-${ulid()}` },
            levels,
            (session, index) => ({
              ...template,
              id: `g${session}-${index}`,
              sessionId: `growth-${session}`,
              kind: 'v',
              createdAtMs: template.createdAtMs + index * 1_000,
            }),
            (step, f) => bar?.update(Math.round(f * 100), { step }),
          );
          scriptP99Growth = Number(((growth.at(-1)?.scriptP99Ms ?? 0) / (growth[0]?.scriptP99Ms || 1)).toFixed(3));
          if (config.clickhouseUrl) await ch.client.command({ query: `DROP DATABASE IF EXISTS ${ch.database}` });
        } finally {
          await ch.close();
          rmSync(dataDir, { recursive: true, force: true });
        }
        bar?.stop();
        const machine = {
          cpu: os.cpus()[0]?.model ?? 'unknown',
          cores: os.cpus().length,
          node: process.version,
          redis: /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown',
        };
        if (opts.json) {
          out(JSON.stringify({ machine, ...result, workerEvents, ...worker, ...flush, growth, scriptP99Growth }));
          return;
        }
        out(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}, redis ${machine.redis}`);
        out(
          table([
            { measure: 'luaPerEvent (ceiling: 1 call/event)', value: result.luaPerEventPerSec, unit: 'events/s' },
            { measure: 'bufferBatched (Event Lens ingest)', value: result.bufferBatchedPerSec, unit: 'events/s' },
            { measure: 'bufferSweep (emit + finalise)', value: result.bufferSweepPerSec, unit: 'events/s' },
            { measure: 'batchedVsPerEventLua', value: result.batchedVsPerEventLua, unit: 'ratio' },
            { measure: 'Redis CPU, batched ingest', value: result.redisCpuUsPerEventBatched, unit: 'µs/event' },
            { measure: 'Redis CPU, per-event script', value: result.redisCpuUsPerEventPerEvent, unit: 'µs/event' },
            { measure: 'redisBytesPerHeldEvent', value: result.redisBytesPerHeldEvent, unit: 'bytes' },
            { measure: 'mean payload', value: result.meanPayloadBytes, unit: 'bytes' },
            { measure: `bullmqNoop (${workerEvents} single-event jobs, no-op processor)`, value: worker.bullmqNoopJobsPerSec, unit: 'jobs/s' },
            { measure: 'workerSingle (same jobs, to rows in ClickHouse)', value: worker.workerSingleEventsPerSec, unit: 'events/s' },
            { measure: 'workerBatch (100 events per job, to rows in ClickHouse)', value: worker.workerBatchEventsPerSec, unit: 'events/s' },
            { measure: 'singleVsNoop', value: worker.singleVsNoop, unit: 'ratio' },
            { measure: `rawInsert (${flush.flushRows} final rows, plain client inserts)`, value: flush.rawInsertRowsPerSec, unit: 'rows/s' },
            { measure: 'flush (the same rows through the flusher)', value: flush.flushRowsPerSec, unit: 'rows/s' },
            { measure: 'flushVsRawInsert', value: flush.flushVsRawInsert, unit: 'ratio' },
            ...growth.map((g) => ({ measure: `ingest call (20 events) p50 / p99 with ${g.heldSessions} held sessions`, value: `${g.scriptP50Ms} / ${g.scriptP99Ms}`, unit: 'ms' })),
            ...growth.map((g) => ({ measure: `bytes per held event with ${g.heldSessions} held sessions`, value: g.bytesPerHeldEvent, unit: 'bytes' })),
            { measure: 'scriptP99Growth', value: scriptP99Growth, unit: 'ratio' },
          ]),
        );
      } finally {
        redis.disconnect();
        await server?.stop();
      }
    });
}

async function storageSuite(opts: { events?: number; runs: number; quick: boolean; json: boolean }): Promise<void> {
  const config = loadConfig(process.env);
  const target = opts.quick ? 200_000 : (opts.events ?? 1_000_000);
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-storage-'));
  const database = `bench_storage_${ulid().toLowerCase()}`;
  const ch = config.clickhouseUrl ? await openClickHouse({ ...config, clickhouseDatabase: database }) : await openClickHouse({ ...config, dataDir, clickhouseDatabase: database });
  const log = (step: string): void => {
    if (!opts.json) process.stderr.write(`bench storage: ${step}\n`);
  };
  try {
    await migrate(ch, { retentionDays: 0 });
    log(`generating ${target} events`);
    const events = generateEvents({ sessions: Math.ceil(target / EVENTS_PER_SESSION), seed: 42 }).slice(0, target);
    const r = await benchStorage(ch, events, { runs: opts.runs, timeoutMs: config.sessionTimeoutMs, onStep: log });
    if (opts.json) {
      out(JSON.stringify(r));
      return;
    }
    const mb = (b: number): string => (b / 1024 / 1024).toFixed(2);
    out(`storage on ${r.events} events: naive ${mb(r.bytes.naive)} MiB, optimised ${mb(r.bytes.optimised)} MiB (views ${mb(r.bytes.views)} MiB), storageRatio ${r.storageRatio}`);
    out(table(r.columns.slice(0, 14).map((c) => ({ column: c.column, naive_kib: Math.round(c.naive / 1024), optimised_kib: Math.round(c.optimised / 1024), ratio: c.naive ? (c.optimised / c.naive).toFixed(3) : '' }))));
    out('');
    out(table(r.queries.map((q) => ({ query: q.query, naive_ms: q.naiveMs.toFixed(1), optimised_ms: q.optimisedMs.toFixed(1), view_ms: q.viewMs === null ? '' : q.viewMs.toFixed(1) }))));
    out('');
    out(table(r.memory.map((m) => ({ query: m.query, naive_peak_mib: mb(m.naiveBytes), optimised_peak_mib: mb(m.optimisedBytes) }))));
    out('');
    out(`time on page: window function ${r.timeOnPage.windowFunctionMs.toFixed(1)} ms, duration column ${r.timeOnPage.durationColumnMs.toFixed(1)} ms, pages view ${r.timeOnPage.viewMs.toFixed(1)} ms`);
    out(
      `ratios: storageRatio=${r.storageRatio} propertyFilterTimeRatio=${r.propertyFilterTimeRatio} dashboardQueryTimeRatio=${r.dashboardQueryTimeRatio} ` +
        `memoryRatio=${r.memoryRatio} timeOnPageRatio=${r.timeOnPageRatio}`,
    );
  } finally {
    if (config.clickhouseUrl) await ch.client.command({ query: `DROP DATABASE IF EXISTS ${database}` });
    await ch.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
