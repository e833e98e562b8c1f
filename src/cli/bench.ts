import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { ulid } from 'ulid';
import { benchBuffer, benchGrowth, benchLongSession, type BufferBenchResult, type GrowthPoint, type LongSessionPoint } from '../bench/buffer-bench.js';
import { benchFlush, type FlushBenchResult } from '../bench/flush-bench.js';
import { benchHttp } from '../bench/http-bench.js';
import { topSelfTime } from '../bench/profile.js';
import { checkoutLabel, compareBuffers, loadSide, normalizer, THIS_CHECKOUT, type BufferSide } from '../bench/compare.js';
import { benchTargets } from '../bench/targets.js';
import { benchStorage, rowsFor } from '../bench/storage-bench.js';
import { benchEndToEnd, benchWorker, type EndToEndResult, type WorkerBenchResult } from '../bench/worker-bench.js';
import { openClickHouse, queryRows, type ClickHouse } from '../clickhouse/client.js';
import { migrate } from '../clickhouse/migrate.js';
import { loadConfig } from '../config.js';
import { normalizeEvent } from '../event/normalize.js';
import { generateEvents } from '../generate/model.js';
import { connectRedis } from '../ops/redis.js';
import { startRedisServer } from '../ops/redis-server.js';
import { int } from './flags.js';
import { out, table } from './output.js';

/** Mean events per generated session (measured on the model); used to size the run. */
const EVENTS_PER_SESSION = 8.4;

export function registerBench(program: Command): void {
  program
    .command('bench')
    .description(
      'benchmarks, each next to its ceiling in the same run. pipeline (default): the buffer and the worker against per-event Lua and a ' +
        'no-op BullMQ worker, on a private redis-server. storage: the optimised schema and views against a naive table',
    )
    .argument('[suite]', 'pipeline | storage | http | buffer', 'pipeline')
    .option('--events <n>', 'events to generate (pipeline: 100 000, storage: 1 000 000)', int(1))
    .option('--runs <n>', 'storage: timed runs per query (the median is reported)', int(1, 1_000), 5)
    .option('--quick', 'a short run (20 000 events)', false)
    .option('--json', 'print one JSON object', false)
    .option('--redis-url <url>', 'use this Redis instead of starting one (only keys under a unique prefix are written and removed)')
    .option('--worker-events <n>', 'events for the worker measurements', int(1), 20_000)
    .option('--connections <n>', 'http: concurrent connections', int(1, 10_000), 50)
    .option('--duration <s>', 'http: seconds per round (two rounds per route)', int(1, 3_600), 10)
    .option('--e2e-requests <n>', 'http: requests of the end-to-end run into ClickHouse', int(1), 20_000)
    .option('--against <checkout>', 'buffer: another checkout (built, e.g. the previous release) whose session buffer runs alternately with this one')
    .option('--rounds <n>', 'buffer: rounds of each side (the median is reported)', int(1, 100), 3)
    .option('--profile <dir>', 'write CPU profiles (.cpuprofile) into dir: the worker during endToEnd (pipeline), serve during its rounds (http); prints the ten functions with the most self time')
    .action(async (suite: string, opts: { events?: number; runs: number; quick: boolean; json: boolean; redisUrl?: string; workerEvents: number; connections: number; duration: number; e2eRequests: number; profile?: string; against?: string; rounds: number }) => {
      if (opts.profile) mkdirSync(opts.profile, { recursive: true });
      if (suite === 'buffer') {
        await bufferSuite(opts);
        return;
      }
      if (suite === 'storage') {
        await storageSuite(opts);
        return;
      }
      if (suite === 'http') {
        await httpSuite(opts);
        return;
      }
      if (suite !== 'pipeline') throw new Error(`bench ${JSON.stringify(suite)}: expected pipeline, storage, http or buffer`);
      const config = loadConfig(process.env);
      const target = opts.quick ? 20_000 : (opts.events ?? 100_000);
      const workerEvents = opts.quick ? 5_000 : opts.workerEvents;
      const server = opts.redisUrl ? undefined : await startRedisServer();
      const redis = await connectRedis(opts.redisUrl ?? (server as { url: string }).url);
      const bar = opts.json || !process.stderr.isTTY ? undefined : new SingleBar({ format: ' {step} [{bar}] {percentage}%', stream: process.stderr }, Presets.shades_classic);
      try {
        const generated = generateEvents({ sessions: Math.ceil(target / EVENTS_PER_SESSION), seed: 42 }).slice(0, target);
        const events = generated.map((e) => normalizeEvent(e, { receivedAtMs: Date.parse(e.createdAt), maxFutureMs: config.maxFutureMs }));
        const step = (label: string, f = 0): void => bar?.update(Math.round(f * 100), { step: label });
        bar?.start(100, 0, { step: 'start' });
        const dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-bench-'));
        const ch = config.clickhouseUrl
          ? await openClickHouse({ ...config, clickhouseDatabase: `bench_${ulid().toLowerCase()}` })
          : await openClickHouse({ ...config, dataDir, clickhouseDatabase: 'bench' });
        const url = opts.redisUrl ?? (server as { url: string }).url;
        let worker: WorkerBenchResult;
        let buffer: BufferBenchResult;
        let flush: FlushBenchResult;
        let endToEnd: EndToEndResult;
        let growth: GrowthPoint[];
        let longSession: LongSessionPoint[];
        let clickhouse = '';
        try {
          await migrate(ch, { retentionDays: 0 });
          clickhouse = `${ch.kind === 'embedded' ? 'chDB (embedded)' : ch.kind} ${await chVersion(ch)}`;
          // 1, 2 (and workerBatch): BullMQ's ceiling and the worker on the same jobs
          worker = await benchWorker(redis, ch, { ...config, redisUrl: url }, generated.slice(0, workerEvents), (label) => step(label));
          // 3, 4, 8: one script call per event against the batched buffer; memory and CPU
          buffer = await benchBuffer(redis, events, { ...config, keyPrefix: `bench-${ulid()}` }, step);
          // 5, 6: plain inserts against the flusher
          step('rawInsert + flush');
          flush = await benchFlush(redis, ch, config, rowsFor(generated, config.sessionTimeoutMs).optimised);
          // 7: producer to visible rows, default settings
          endToEnd = await benchEndToEnd(ch, { ...config, redisUrl: url }, generated, redis, (label) => step(label), opts.profile);
          const template = events[0] as (typeof events)[number];
          // one session growing to 50 000 events: the cost of a call must not grow with it (before the
          // growth measure, which leaves Redis freeing a million sessions' keys)
          longSession = await benchLongSession(
            redis,
            { ...config, keyPrefix: `bench-long-${ulid()}` },
            opts.quick ? [1_000, 10_000] : [1_000, 10_000, 50_000],
            (index, createdAtMs, kind) => ({ ...template, id: `ls${index}`, sessionId: 'long-session', kind, name: kind === 'v' ? 'screen_view' : 'click', createdAtMs }),
            step,
          );
          // 9, last: filling Redis with a million sessions would disturb the measurements after it
          const levels = opts.quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
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
            step,
          );
          if (config.clickhouseUrl) await ch.client.command({ query: `DROP DATABASE IF EXISTS ${ch.database}` });
        } finally {
          await ch.close();
          rmSync(dataDir, { recursive: true, force: true });
        }
        bar?.stop();
        const machine = {
          cpu: os.cpus()[0]?.model ?? 'unknown',
          cores: os.cpus().length,
          memoryGiB: Math.round(os.totalmem() / 2 ** 30),
          node: process.version,
          redis: /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? 'unknown',
          clickhouse,
        };
        const ratio = (a: number, b: number): number => Number((a / (b || 1)).toFixed(3));
        const ratios = {
          singleVsNoop: worker.singleVsNoop,
          batchedVsPerEventLua: buffer.batchedVsPerEventLua,
          flushVsRawInsert: flush.flushVsRawInsert,
          scriptP99Growth: ratio(growth.at(-1)?.scriptP99Ms ?? 0, growth[0]?.scriptP99Ms ?? 0),
          endToEndVsRawInsert: ratio(endToEnd.eventsPerSec, flush.rawInsertRowsPerSec),
        };
        // the same calls timed inside Redis (SLOWLOG): the script's own cost, without client noise
        const serverP99 = (g?: GrowthPoint): number | null => g?.serverP99Ms ?? null;
        const scriptServerP99Growth = serverP99(growth[0]) && serverP99(growth.at(-1)) ? ratio(serverP99(growth.at(-1)) as number, serverP99(growth[0]) as number) : null;
        const report = {
          machine,
          events: events.length,
          workerEvents,
          bullmqNoop: worker.bullmqNoopJobsPerSec,
          workerSingle: worker.workerSingleEventsPerSec,
          workerBatch: worker.workerBatchEventsPerSec,
          luaPerEvent: buffer.luaPerEventPerSec,
          bufferBatched: buffer.bufferBatchedPerSec,
          bufferSweep: buffer.bufferSweepPerSec,
          rawInsert: flush.rawInsertRowsPerSec,
          rawInsertByLayout: { objects: flush.rawInsertObjectsRowsPerSec, positional: flush.rawInsertPositionalRowsPerSec },
          rawInsertSmall: { rowsPerSec: flush.smallInsertRowsPerSec, msPerInsert: flush.smallInsertMs, rowsPerInsert: 25 },
          flush: flush.flushRowsPerSec,
          endToEnd,
          workerCpuUsPerEvent: endToEnd.workerCpuUsPerEvent,
          redisBytesPerHeldEvent: buffer.redisBytesPerHeldEvent,
          redisBytesPerHeldEventRecommended: buffer.redisBytesPerHeldEventRecommended,
          meanPayloadBytes: buffer.meanPayloadBytes,
          redisCpuUsPerEvent: { batched: buffer.redisCpuUsPerEventBatched, perEventScript: buffer.redisCpuUsPerEventPerEvent },
          growth,
          longSession,
          ratios,
          scriptServerP99Growth,
          targets: benchTargets({
            redisCpuUsPerEventBatched: buffer.redisCpuUsPerEventBatched,
            batchedVsPerEventLua: ratios.batchedVsPerEventLua,
            singleVsNoop: ratios.singleVsNoop,
            endToEndVsRawInsert: ratios.endToEndVsRawInsert,
            workerCpuUsPerEvent: endToEnd.workerCpuUsPerEvent,
            redisBytesPerHeldEvent: buffer.redisBytesPerHeldEvent,
            meanPayloadBytes: buffer.meanPayloadBytes,
            endToEndP99Ms: endToEnd.p99Ms,
            graceMs: config.graceMs,
            scriptP99Growth: ratios.scriptP99Growth,
            flushVsRawInsert: ratios.flushVsRawInsert,
            longSessionCallMs: longSessionCallMs(longSession.at(-1)),
            longSessionEvents: longSession.at(-1)?.sessionEvents ?? 0,
          }),
        };
        if (opts.json) {
          out(JSON.stringify(report));
          return;
        }
        out(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, node ${machine.node}, redis ${machine.redis}, ClickHouse ${machine.clickhouse}`);
        out(
          table([
            { measure: `1 bullmqNoop (${workerEvents} single-event jobs, no-op processor)`, value: report.bullmqNoop, unit: 'jobs/s' },
            { measure: '2 workerSingle (same jobs, to rows in ClickHouse)', value: report.workerSingle, unit: 'events/s' },
            { measure: '  workerBatch (100 events per job, to rows in ClickHouse)', value: report.workerBatch, unit: 'events/s' },
            { measure: '3 luaPerEvent (ceiling: 1 script call per event)', value: report.luaPerEvent, unit: 'events/s' },
            { measure: '4 bufferBatched (Event Lens ingest, grouped by shard)', value: report.bufferBatched, unit: 'events/s' },
            { measure: '  bufferSweep (emit + finalise)', value: report.bufferSweep, unit: 'events/s' },
            { measure: `5 rawInsert (${flush.flushRows} final rows, plain client inserts, the faster layout)`, value: report.rawInsert, unit: 'rows/s' },
            { measure: '  objects (JSONEachRow) / positional (JSONCompactEachRow)', value: `${report.rawInsertByLayout.objects} / ${report.rawInsertByLayout.positional}`, unit: 'rows/s' },
            { measure: '  the first 2 000 in inserts of 25 rows (ms per insert)', value: `${report.rawInsertSmall.rowsPerSec} (${report.rawInsertSmall.msPerInsert})`, unit: 'rows/s' },
            { measure: '6 flush (the same rows through the flusher)', value: report.flush, unit: 'rows/s' },
            { measure: `7 endToEnd (${events.length} events, producer, batch jobs of 100)`, value: endToEnd.eventsPerSec, unit: 'events/s' },
            { measure: `  endToEnd settle-to-visible p50 / p99 (${endToEnd.latencyRows} rows)`, value: `${endToEnd.p50Ms} / ${endToEnd.p99Ms}`, unit: 'ms' },
            { measure: '  worker main-thread CPU per event (producer subtracted) / whole process', value: `${endToEnd.workerCpuUsPerEvent ?? 'n/a'} / ${endToEnd.processCpuUsPerEvent}`, unit: 'µs/event' },
            { measure: '8 redisBytesPerHeldEvent / mean payload', value: `${report.redisBytesPerHeldEvent} / ${report.meanPayloadBytes}`, unit: 'bytes' },
            { measure: '  the same, recommended listpack settings', value: report.redisBytesPerHeldEventRecommended ?? 'n/a (no CONFIG)', unit: 'bytes' },
            { measure: '  Redis CPU, batched ingest / per-event script', value: `${buffer.redisCpuUsPerEventBatched} / ${buffer.redisCpuUsPerEventPerEvent}`, unit: 'µs/event' },
            ...growth.map((g) => ({ measure: `9 ingest call (20 events) p50 / p99, ${g.heldSessions} held sessions`, value: `${g.scriptP50Ms} / ${g.scriptP99Ms}`, unit: 'ms' })),
            ...growth.map((g) => ({ measure: `  same, script time inside Redis (per shard call), ${g.heldSessions}`, value: `${g.serverP50Ms ?? '-'} / ${g.serverP99Ms ?? '-'}`, unit: 'ms' })),
            { measure: '  scriptServerP99Growth (inside Redis, largest ÷ 10 000)', value: scriptServerP99Growth ?? '-', unit: 'ratio' },
            ...growth.map((g) => ({ measure: `  bytes per held event, ${g.heldSessions} held sessions`, value: g.bytesPerHeldEvent, unit: 'bytes' })),
            ...longSession.map((p) => ({
              measure: `10 one-event call on a ${p.sessionEvents}-event session, inside Redis: append p50 / max, insert p50 / max`,
              value: `${p.appendP50Ms ?? '-'} / ${p.appendMaxMs ?? '-'}, ${p.insertP50Ms ?? '-'} / ${p.insertMaxMs ?? '-'}`,
              unit: 'ms',
            })),
          ]),
        );
        out('');
        out(
          table(
            Object.entries(report.targets).map(([measure, t]) => ({ measure, value: t.value ?? 'n/a', target: t.target, met: t.met ? 'met' : 'not met' })),
          ),
        );
        if (endToEnd.profile) printProfile('the worker during endToEnd (measured phase)', endToEnd.profile);
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

/** The slower of the two median call times (append, insert) on the longest session, or null without SLOWLOG. */
function longSessionCallMs(p: LongSessionPoint | undefined): number | null {
  if (!p || p.appendP50Ms === null || p.insertP50Ms === null) return null;
  return Math.max(p.appendP50Ms, p.insertP50Ms);
}

async function chVersion(ch: ClickHouse): Promise<string> {
  const [row] = await queryRows<{ v: string }>(ch, 'SELECT version() AS v');
  return row?.v ?? 'unknown';
}


/** `bench http`: the intake against its own no-op route, then end to end into ClickHouse. */
async function httpSuite(opts: { quick: boolean; json: boolean; connections: number; duration: number; e2eRequests: number; profile?: string }): Promise<void> {
  const r = await benchHttp({
    ...(opts.profile ? { profileDir: opts.profile } : {}),
    connections: opts.connections,
    durationS: opts.quick ? 3 : opts.duration,
    endToEndRequests: opts.quick ? 5_000 : opts.e2eRequests,
    progress: opts.json ? undefined : (label) => process.stderr.write(`bench http: ${label}\n`),
  });
  if (opts.json) {
    out(JSON.stringify(r));
    return;
  }
  out(`bench http: ${r.connections} connections, ${r.durationS} s per round, 2 rounds per route (alternating), 1 000 visitors`);
  out(
    table([
      { route: 'POST /bench/noop', 'requests/s': r.noop.requestsPerSecond, p50_ms: r.noop.p50Ms, p99_ms: r.noop.p99Ms, events_to_queue_per_s: '', non_2xx: r.noop.non2xx },
      { route: 'POST /track', 'requests/s': r.track.requestsPerSecond, p50_ms: r.track.p50Ms, p99_ms: r.track.p99Ms, events_to_queue_per_s: r.track.eventsToQueuePerSecond, non_2xx: r.track.non2xx },
    ]),
  );
  out(`ratio /track ÷ no-op: ${r.ratios.trackVsNoop} (target >= 0.5: ${r.ratios.trackVsNoop >= 0.5 ? 'met' : 'not met'}); ${r.track.meanEventsPerJob} events per coalesced job`);
  out(`end to end: ${r.endToEnd.requests} /track requests -> ${r.endToEnd.rows} rows visible in ClickHouse in ${r.endToEnd.seconds} s (${r.endToEnd.eventsPerSecond} events/s, including the 2.5 s session timeout + grace of the last views)`);
  if (r.profile) printProfile('serve during the /track and no-op rounds', r.profile);
}

/** `bench buffer [--against <checkout>]`: the session buffer alone, or side by side with another checkout's, alternating. */
async function bufferSuite(opts: { events?: number; quick: boolean; json: boolean; redisUrl?: string; against?: string; rounds: number }): Promise<void> {
  const target = opts.quick ? 20_000 : (opts.events ?? 100_000);
  const generated = generateEvents({ sessions: Math.ceil(target / EVENTS_PER_SESSION), seed: 42 }).slice(0, target);
  const current: BufferSide = { label: checkoutLabel(THIS_CHECKOUT), bench: benchBuffer, normalize: normalizer(normalizeEvent), settings: (env) => loadConfig(env) };
  const against = opts.against ? await loadSide(opts.against) : current;
  const server = opts.redisUrl ? undefined : await startRedisServer();
  const redis = await connectRedis(opts.redisUrl ?? (server as { url: string }).url);
  try {
    const progress = opts.json ? undefined : (label: string): boolean => process.stderr.write(`bench buffer: ${label}\n`);
    const measures = await compareBuffers(redis, generated, process.env, `bench-buffer-${ulid()}`, against, current, opts.rounds, progress);
    if (opts.json) {
      out(JSON.stringify({ events: generated.length, rounds: opts.rounds, against: against.label, current: current.label, measures }));
      return;
    }
    out(`bench buffer: ${generated.length} events, ${opts.rounds} rounds alternating; ${against === current ? 'this build against itself (pass --against <checkout>)' : `${against.label} (against) and ${current.label}`}`);
    out(
      table(
        measures.map((m) => ({
          measure: m.measure,
          against: `${m.against.join(', ')} (median ${[...m.against].sort((a, b) => a - b)[Math.floor(m.against.length / 2)]})`,
          current: `${m.current.join(', ')} (median ${[...m.current].sort((a, b) => a - b)[Math.floor(m.current.length / 2)]})`,
          'current ÷ against': m.ratio,
          unit: m.unit,
        })),
      ),
    );
  } finally {
    redis.disconnect();
    await server?.stop();
  }
}

/** The ten functions with the most self time in a profile `bench --profile` wrote. */
function printProfile(what: string, file: string): void {
  out(`CPU profile of ${what}: ${file} (open it in Chrome DevTools or speedscope); most self time:`);
  out(table(topSelfTime(file).map((t) => ({ 'self %': (t.share * 100).toFixed(1), function: t.fn.length > 60 ? `${t.fn.slice(0, 57)}...` : t.fn, where: t.where }))));
}
