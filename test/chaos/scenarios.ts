/**
 * The chaos scenarios of `npm run test:chaos` (see README, "Reliability").
 * Each one starts its own redis-server(s) and worker processes, sends a
 * generated stream through the producer, breaks something on purpose, and
 * compares ClickHouse with the reference model row by row.
 */
import { execFile } from 'node:child_process';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Queue } from 'bullmq';
import { listDeadLetters } from '../../src/buffer/dead-letters.js';
import { SessionBuffer } from '../../src/buffer/session-buffer.js';
import type { RowFigures } from '../../src/buffer/durations.js';
import type { GeneratedEvent } from '../../src/generate/model.js';
import { bullConnection, connectRedis, masters, releaseBullConnection, type RedisClient } from '../../src/ops/redis.js';
import { startRedisServer, type RedisServerHandle } from '../../src/ops/redis-server.js';
import { waitUntilDrained } from '../../src/queue/drain.js';
import { Producer, type IncomingEvent } from '../../src/queue/producer.js';
import { startCluster } from './cluster.js';
import {
  BIN,
  compare,
  drainBuffer,
  expectedRows,
  leaks,
  queueCounts,
  sleep,
  Stack,
  stream,
  type ScenarioResult,
} from './harness.js';

export interface ScenarioOptions {
  events: number;
  seed: number;
}

/** What a scenario body gets: the running stack and the stream being sent. */
export interface Run {
  stack: Stack;
  redis: RedisClient;
  server: RedisServerHandle;
  queue: Queue;
  events: GeneratedEvent[];
  /** Expected rows by id; a scenario may add the events it sends itself. */
  expected: Map<string, RowFigures>;
  figures: Record<string, string | number>;
  failures: string[];
  /** Fraction of the stream's jobs finished so far (0..1), from the queue counts. */
  progress(): Promise<number>;
  /** Resolves when the producer has enqueued everything. */
  enqueued: Promise<void>;
  /** Share of the stream's jobs the producer has enqueued so far (0..1). */
  sentShare(): number;
  /** Set once the comparison is done and the processes are being stopped. */
  finished: boolean;
}

export interface ScenarioSpec {
  name: string;
  /** A 3-master Redis Cluster instead of one redis-server. */
  cluster?: boolean;
  /** Extra worker environment. */
  env?: Record<string, string>;
  redisArgs?: string[];
  ingestWorkers?: number;
  /** Environment of the flush process only (e.g. a fault hook). */
  flushEnv?: (stack: Stack) => Record<string, string>;
  /** Do not start the flush process with the others (the body starts it). */
  deferFlush?: boolean;
  /** Largest number of jobs the producer keeps waiting (an API with its own limit); default: no limit. */
  maxWaitingJobs?: number;
  /** Turns each batch of good events into the job's events (bad input mixes some in). */
  mix?: (batch: GeneratedEvent[], job: number, jobs: number) => object[];
  /** Jobs that must end in the failed set (invalid single-event jobs); any other failed job is a failure. */
  failedJobs?: number;
  /** Completed jobs the producer keeps (bad input reads their results). */
  keepCompleted?: number;
  /** The producer's enqueueTimeoutMs (default: the producer's own). */
  enqueueTimeoutMs?: number;
  /** The fault; runs while the stream is processed. */
  body(run: Run): Promise<void>;
  /** After the buffer is drained, before ClickHouse is compared (a recovery step, such as a redrive). */
  beforeCompare?(run: Run): Promise<void>;
  /** Extra checks after the comparison. */
  after?(run: Run): Promise<void>;
}

/** Marker values in every event: logs must never show them. */
export const LEAK_MARKERS = { ip: '198.51.100.', secret: 'payload-marker-7f3a' };

const PER_JOB = 100;

/** Enqueues the stream in batch jobs of 100; a failed enqueue (Redis down, OOM) is retried. */
async function enqueueAll(
  producer: Producer,
  events: readonly GeneratedEvent[],
  spec: ScenarioSpec,
  figures: Record<string, string | number>,
  sent: { jobs: number },
): Promise<void> {
  let retries = 0;
  let slowestFailureMs = 0;
  const maxWaiting = spec.maxWaitingJobs;
  for (let i = 0; i < events.length; i += PER_JOB) {
    const batch = events.slice(i, i + PER_JOB);
    const jobEvents = spec.mix ? spec.mix(batch, i / PER_JOB, Math.ceil(events.length / PER_JOB)) : batch;
    if (maxWaiting !== undefined) {
      // a failed count (Redis down) lets the enqueue try, and fail within its timeout
      // (BullMQ's count waits for a connection that is gone: bounded here)
      const waiting = (): Promise<number> => Promise.race([producer.queue.getWaitingCount().catch(() => 0), sleep(500).then(() => 0)]);
      while ((await waiting()) >= maxWaiting) await sleep(50);
    }
    for (let attempt = 0; ; attempt += 1) {
      const callStarted = performance.now();
      try {
        // re-sent after a failure with the same ids, so a job that landed anyway changes nothing
        await producer.enqueueBatch(jobEvents as IncomingEvent[]); // malformed on purpose in bad-input
        sent.jobs += 1;
        break;
      } catch (err) {
        if (process.env.CHAOS_DEBUG) process.stderr.write(`enqueue failed: ${(err as Error).message}\n`);
        slowestFailureMs = Math.max(slowestFailureMs, performance.now() - callStarted);
        retries += 1;
        await sleep(Math.min(100 * 2 ** attempt, 2_000));
      }
    }
  }
  figures.enqueueRetries = retries;
  if (retries > 0) figures.slowestFailedEnqueueMs = Math.round(slowestFailureMs);
}

export async function runScenario(spec: ScenarioSpec, options: ScenarioOptions): Promise<ScenarioResult> {
  const started = performance.now();
  const servers = spec.cluster ? await startCluster(3, spec.redisArgs ?? []) : [await startRedisServer({ args: spec.redisArgs ?? [] })];
  const server = servers[0] as RedisServerHandle;
  const target = { url: server.url, cluster: spec.cluster ?? false };
  const stack = new Stack(server.url, { ...(spec.cluster ? { REDIS_CLUSTER: 'true' } : {}), ...spec.env });
  const redis = await connectRedis(target);
  const queueConnection = bullConnection(target, 'producer');
  const queue = new Queue(stack.config.queueName, { connection: queueConnection, prefix: stack.config.queuePrefix });
  // Redis restarts on purpose: connection errors are expected, and counted
  let clientErrors = 0;
  queue.on('error', () => (clientErrors += 1));
  const producer = new Producer({
    redisUrl: server.url,
    cluster: target.cluster,
    queueName: stack.config.queueName,
    prefix: stack.config.queuePrefix,
    ...(spec.keepCompleted ? { keepCompleted: spec.keepCompleted } : {}),
    ...(spec.enqueueTimeoutMs ? { enqueueTimeoutMs: spec.enqueueTimeoutMs } : {}),
    onError: () => (clientErrors += 1),
  });
  producer.queue.on('error', () => (clientErrors += 1));
  const figures: Record<string, string | number> = {};
  const failures: string[] = [];
  try {
    const events = stream(options.events, options.seed).map((e, i) => ({ ...e, ip: `${LEAK_MARKERS.ip}${i % 250}`, properties: { ...e.properties, marker: LEAK_MARKERS.secret } }));
    const expected = expectedRows(events, stack.config.sessionTimeoutMs);
    if (!spec.deferFlush) stack.start('flush', 'flush', spec.flushEnv?.(stack));
    for (let i = 1; i <= (spec.ingestWorkers ?? 2); i += 1) stack.start(`ingest-${i}`, 'ingest');
    const jobs = Math.ceil(events.length / PER_JOB);
    const sent = { jobs: 0 };
    const enqueued = enqueueAll(producer, events, spec, figures, sent);
    const run: Run = {
      stack,
      redis,
      server,
      queue,
      events,
      expected,
      figures,
      failures,
      enqueued,
      sentShare: () => sent.jobs / jobs,
      finished: false,
      progress: async () => {
        const { pending } = await queueCounts(queue).catch(() => ({ pending: sent.jobs }));
        return Math.max(0, (sent.jobs - pending) / jobs);
      },
    };
    const debug = (m: string): void => void (process.env.CHAOS_DEBUG && process.stderr.write(`${m}\n`));
    await Promise.all([enqueued.then(() => debug('enqueued')), spec.body(run).then(() => debug(`body done; unexpected exits: ${stack.unexpectedExits.join('; ') || 'none'}`))]);
    await waitUntilDrained(queue, 600_000, 250);
    debug('drained');
    const { failed } = await queueCounts(queue);
    if (failed !== (spec.failedJobs ?? 0)) failures.push(`${failed} jobs failed (expected ${spec.failedJobs ?? 0})`);
    figures.failedJobs = failed;
    await drainBuffer(redis, stack.config, 300_000);
    debug('buffer drained');
    const stats = await new SessionBuffer(redis, stack.config).stats();
    figures.late = stats.late ?? 0;
    figures.duplicateIdsDropped = stats.duplicate ?? 0;
    await spec.beforeCompare?.(run);
    const counts = await compare(await stack.clickhouse(), expected);
    await spec.after?.(run);
    run.finished = true;
    if (clientErrors > 0) figures.harnessClientErrors = clientErrors;
    failures.push(...(await stack.stop()));
    failures.push(...stack.unexpectedExits);
    const leaked = leaks(stack, [LEAK_MARKERS.ip, LEAK_MARKERS.secret]);
    if (leaked.length > 0) failures.push(`${leaked.length} log lines show payload values or IPs, e.g. ${leaked[0]}`);
    return { name: spec.name, events: expected.size, ...counts, seconds: Math.round((performance.now() - started) / 1000), figures, failures };
  } finally {
    await producer.close().catch(() => {});
    await queue.close().catch(() => {});
    releaseBullConnection(queueConnection);
    redis.disconnect();
    stack.cleanup();
    await Promise.all(servers.map((s) => s.stop()));
  }
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)] as T;

/** 1. Replica crashes: three ingest workers and a flusher; every second one process is SIGKILLed and restarted (a random ingest worker; every third time the flusher). */
export const replicaCrashes: ScenarioSpec = {
  name: 'replica-crashes',
  ingestWorkers: 3,
  env: { LEASE_MS: '3000' },
  async body(run) {
    // from the first job on, not after the producer is done: the workers may finish soon after it
    while ((await run.progress()) === 0) await sleep(50);
    let kills = 0;
    const byRole: Record<string, number> = {};
    while ((await run.progress()) < 1) {
      await sleep(1_000);
      // a random ingest worker, and every third kill the flusher (which owns the embedded ClickHouse)
      const name = kills % 3 === 1 ? 'flush' : pick([...run.stack.procs.keys()].filter((n) => n !== 'flush'));
      const proc = run.stack.procs.get(name);
      if (!proc) continue;
      await run.stack.kill(name);
      run.stack.start(name, proc.role as 'ingest' | 'flush');
      kills += 1;
      byRole[proc.role] = (byRole[proc.role] ?? 0) + 1;
    }
    run.figures.kills = kills;
    run.figures.killedIngest = byRole.ingest ?? 0;
    run.figures.killedFlush = byRole.flush ?? 0;
    if (kills < 3) run.failures.push(`only ${kills} kills happened: the stream finished too fast to test anything`);
  },
};

/** 2. The flusher is killed right after ClickHouse confirmed an insert, before the batch is acknowledged (five times). */
export function flusherCrash(): ScenarioSpec {
  let crashes = 0;
  return {
    name: 'flusher-crash-after-insert',
    env: { LEASE_MS: '2000', FLUSH_MAX_ROWS: '2000' },
    flushEnv: () => ({ EVENT_LENS_FAULTS: 'crash-after-insert:3' }),
    async body(run) {
      // a supervisor, as an orchestrator would be: restart the flusher each time the hook kills it,
      // through the stream and the final drain; the sixth flusher runs without the hook
      void (async () => {
        while (crashes < 5) {
          await run.stack.expectExit('flush');
          if (run.finished) return;
          crashes += 1;
          run.stack.start('flush', 'flush', crashes < 5 ? { EVENT_LENS_FAULTS: `crash-after-insert:${2 + (crashes % 3)}` } : {});
        }
      })();
    },
    async after(run) {
      run.figures.crashesAfterInsert = crashes;
      if (crashes === 0) run.failures.push('the fault hook never fired');
    },
  };
}

/** 3. ClickHouse unreachable for 30 s mid-stream (through the fault hook of the embedded insert path). */
export function clickhouseOutage(outageMs = 30_000): ScenarioSpec {
  const downFile = (stack: Stack): string => path.join(stack.dataDir, 'clickhouse-down');
  return {
    name: 'clickhouse-outage',
    env: { BACKLOG_HIGH_WATERMARK: '15000', BACKLOG_LOW_WATERMARK: '5000' },
    flushEnv: (stack) => ({ EVENT_LENS_FAULTS: `clickhouse-down-file:${downFile(stack)}` }),
    async body(run) {
      while ((await run.progress()) < 0.15) await sleep(100);
      writeFileSync(downFile(run.stack), 'down');
      const downAt = performance.now();
      await sleep(outageMs);
      rmSync(downFile(run.stack));
      run.figures.outageS = Math.round((performance.now() - downAt) / 1000);
    },
    async after(run) {
      const engaged = run.stack.logged(/backpressure: stopped taking jobs/).length;
      const released = run.stack.logged(/backpressure released/).length;
      run.figures.backpressureEngaged = engaged;
      run.figures.backpressureReleased = released;
      run.figures.insertFailuresLogged = run.stack.logged(/loop iteration failed/).length;
      if (engaged === 0) run.failures.push('backpressure never engaged during the outage');
      if (released === 0) run.failures.push('backpressure never released after the outage');
    },
  };
}

/** 4. Redis (AOF everysec) killed with SIGKILL mid-stream and restarted on the same port and directory. */
export const redisRestart: ScenarioSpec = {
  name: 'redis-restart',
  redisArgs: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
  async body(run) {
    while ((await run.progress()) < 0.4) await sleep(100);
    const aofBefore = Number(/aof_current_size:(\d+)/.exec(await run.redis.info('persistence'))?.[1] ?? 0);
    await run.server.kill('SIGKILL');
    const downAt = performance.now();
    // what a kill can lose under everysec: bytes Redis had counted as written to the AOF
    // (replies sent) that are not in the files it will load
    const aofDir = path.join(run.server.dir, 'appendonlydir');
    const onDisk = readdirSync(aofDir)
      .filter((f) => !f.endsWith('.manifest'))
      .reduce((n, f) => n + statSync(path.join(aofDir, f)).size, 0);
    run.figures.aofBytesBeforeKill = aofBefore;
    run.figures.aofBytesOnDiskAfterKill = onDisk;
    run.figures.aofBytesLost = Math.max(0, aofBefore - onDisk);
    await sleep(1_000);
    await run.server.restart();
    run.figures.redisDownMs = Math.round(performance.now() - downAt);
  },
  async after(run) {
    const stats = await run.redis.info('commandstats');
    // the script cache is empty after a restart: NOSCRIPT was answered with EVAL
    run.figures.evalAfterRestart = Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0);
    run.figures.jobsHeldInPlace = run.stack.logged(/Redis connection trouble: holding the job/).length;
    if (run.figures.evalAfterRestart === 0) run.failures.push('no EVAL after the restart: the NOSCRIPT path was not exercised');
  },
};

/** 7. Redis with a small maxmemory (noeviction); the flusher starts late, so Redis fills up and answers OOM. */
export function memoryPressure(maxmemoryMb = 48): ScenarioSpec {
  return {
    name: 'memory-pressure',
    redisArgs: ['--maxmemory', `${maxmemoryMb}mb`, '--maxmemory-policy', 'noeviction'],
    deferFlush: true,
    maxWaitingJobs: 20,
    async body(run) {
      const deadline = Date.now() + 120_000;
      while (run.stack.logged(/Redis is at maxmemory/).length === 0) {
        if (Date.now() > deadline) {
          run.failures.push('Redis never reached maxmemory: raise the stream size or lower maxmemory');
          break;
        }
        await sleep(200);
      }
      run.figures.oomAtProgress = Number((await run.progress()).toFixed(2));
      await sleep(3_000);
      run.stack.start('flush', 'flush');
    },
    async after(run) {
      run.figures.oomPauses = run.stack.logged(/Redis is at maxmemory/).length;
      run.figures.oomRecovered = run.stack.logged(/held job ingested/).length;
      run.figures.usedMemoryPeakMb = Number((Number(/used_memory_peak:(\d+)/.exec(await run.redis.info('memory'))?.[1] ?? 0) / 2 ** 20).toFixed(1));
      if (run.figures.oomRecovered === 0) run.failures.push('no worker reported recovery from OOM');
    },
  };
}

/** 5. A 3-master Redis Cluster: the same stream gives the same rows, no CROSSSLOT errors, shards on every master. */
export const redisCluster: ScenarioSpec = {
  name: 'redis-cluster',
  cluster: true,
  ingestWorkers: 2,
  async body(run) {
    while ((await run.progress()) < 0.5) await sleep(200);
    const nodes = masters(run.redis);
    const sizes = await Promise.all(nodes.map((n) => n.dbsize()));
    run.figures.masters = nodes.length;
    run.figures.keysPerMaster = sizes.join('/');
    // which master serves each shard (by the slot of its hash tag)
    const slots = ((await nodes[0]?.cluster('SLOTS')) ?? []) as unknown as [number, number, [string, number]][];
    const perMaster = new Map<number, number>();
    for (let shard = 0; shard < run.stack.config.bufferShards; shard += 1) {
      const slot = Number(await nodes[0]?.cluster('KEYSLOT', `${run.stack.config.keyPrefix}:{${shard}}:due`));
      const owner = slots.find(([from, to]) => slot >= from && slot <= to)?.[2][1] ?? -1;
      perMaster.set(owner, (perMaster.get(owner) ?? 0) + 1);
    }
    run.figures.shardsPerMaster = [...perMaster.values()].join('/');
    if (perMaster.size < 3) run.failures.push(`the ${run.stack.config.bufferShards} shards sit on ${perMaster.size} of 3 masters`);
    if (sizes.some((n) => n === 0)) run.failures.push(`a master holds no keys: ${sizes.join('/')}`);
  },
  async after(run) {
    // every stderr line, JSON or not (ioredis' client-side "same slot" errors included)
    const crossSlot = [...run.stack.procs.values()].reduce((n, p) => n + p.stderr.filter((l) => /CROSSSLOT|same slot/i.test(l)).length, 0);
    run.figures.crossSlotErrors = crossSlot;
    if (crossSlot > 0) run.failures.push(`${crossSlot} CROSSSLOT errors in the worker logs`);
  },
};

/** Rows in the dead-letter lists of every shard and stream. */
async function deadLetterCount(run: Run): Promise<number> {
  return (await new SessionBuffer(run.redis, run.stack.config).backlog()).reduce((n, b) => n + b.dead, 0);
}

/** 8. ClickHouse rejects every insert for 30 s with a systemic error (authentication), through the real classifier: nothing is dead-lettered. */
export function clickhouseSystemic(outageMs = 30_000): ScenarioSpec {
  const file = (stack: Stack): string => path.join(stack.dataDir, 'clickhouse-systemic');
  return {
    name: 'clickhouse-systemic',
    env: { BACKLOG_HIGH_WATERMARK: '15000', BACKLOG_LOW_WATERMARK: '5000' },
    flushEnv: (stack) => ({ EVENT_LENS_FAULTS: `clickhouse-systemic-file:${file(stack)}` }),
    async body(run) {
      while ((await run.progress()) < 0.15) await sleep(100);
      writeFileSync(file(run.stack), 'AUTHENTICATION_FAILED');
      await sleep(outageMs / 2);
      run.figures.deadLettersMidOutage = await deadLetterCount(run);
      await sleep(outageMs / 2);
      rmSync(file(run.stack));
      run.figures.outageS = Math.round(outageMs / 1000);
    },
    async after(run) {
      run.figures.deadLetters = await deadLetterCount(run);
      run.figures.backpressureEngaged = run.stack.logged(/backpressure: stopped taking jobs/).length;
      run.figures.failedFlushRounds = run.stack.logged(/loop iteration failed/).length;
      if (run.figures.deadLetters !== 0 || run.figures.deadLettersMidOutage !== 0) run.failures.push(`good rows were dead-lettered: ${run.figures.deadLetters}`);
      if (run.figures.backpressureEngaged === 0) run.failures.push('backpressure never engaged during the systemic failure');
      if (run.figures.failedFlushRounds === 0) run.failures.push('no insert failed: the fault hook did not fire');
    },
  };
}

/** 9. SIGTERM to every worker while Redis is unreachable: each exits within SHUTDOWN_TIMEOUT_MS + margin; after Redis and the workers return, nothing is lost. */
export function sigtermRedisDown(shutdownMs = 5_000, marginMs = 3_000): ScenarioSpec {
  return {
    name: 'sigterm-redis-down',
    redisArgs: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
    env: { SHUTDOWN_TIMEOUT_MS: String(shutdownMs) },
    enqueueTimeoutMs: 1_000,
    async body(run) {
      while ((await run.progress()) < 0.4) await sleep(100);
      await run.server.kill('SIGKILL');
      await sleep(300);
      const names = [...run.stack.procs.keys()];
      const roles = new Map(names.map((n) => [n, run.stack.procs.get(n)?.role as 'ingest' | 'flush']));
      const timings = await Promise.all(
        names.map(async (name) => {
          const t0 = performance.now();
          const code = await run.stack.kill(name, 'SIGTERM');
          return { name, ms: Math.round(performance.now() - t0), code };
        }),
      );
      run.figures.slowestExitMs = Math.max(...timings.map((t) => t.ms));
      run.figures.exitCodes = timings.map((t) => `${t.name}:${t.code}`).join('/');
      if (run.figures.slowestExitMs > shutdownMs + marginMs + 1_000) run.failures.push(`a worker took ${run.figures.slowestExitMs} ms to exit (deadline ${shutdownMs} + ${marginMs} ms)`);
      if (timings.some((t) => t.code === 0)) run.failures.push('a worker exited 0 although Redis was gone (work was left behind)');
      await run.server.restart();
      for (const name of names) run.stack.start(name, roles.get(name) ?? 'ingest');
    },
  };
}

/** 10. The producer against a dead Redis: every enqueue rejects within enqueueTimeoutMs; the re-sent events give the same rows. */
export function producerDeadRedis(timeoutMs = 1_000, downMs = 6_000): ScenarioSpec {
  return {
    name: 'producer-dead-redis',
    redisArgs: ['--appendonly', 'yes', '--appendfsync', 'everysec'],
    enqueueTimeoutMs: timeoutMs,
    // an API that sends as the workers take: the producer is still sending when Redis dies
    maxWaitingJobs: 20,
    async body(run) {
      // once the workers run (they refuse to start without Redis), while the producer is still sending
      while ((await run.progress()) < 0.05) await sleep(50);
      await run.server.kill('SIGKILL');
      run.figures.killedAtSent = Number(run.sentShare().toFixed(2));
      await sleep(downMs);
      await run.server.restart();
      run.figures.redisDownMs = downMs;
    },
    async after(run) {
      const slowest = Number(run.figures.slowestFailedEnqueueMs ?? 0);
      if (!run.figures.enqueueRetries) run.failures.push('no enqueue failed: Redis was not down while the producer sent');
      if (slowest > timeoutMs + 500) run.failures.push(`a failed enqueue took ${slowest} ms (enqueueTimeoutMs ${timeoutMs})`);
    },
  };
}

/** 11. Poison rows: the fault hook corrupts 20 rows in flight; exactly those are dead-lettered; after the hook is removed, `dead-letters redrive --all` puts them in once. */
export function poisonRows(count = 20): ScenarioSpec {
  const file = (stack: Stack): string => path.join(stack.dataDir, 'corrupt-ids');
  let poisoned: string[] = [];
  return {
    name: 'poison-rows',
    flushEnv: (stack) => ({ EVENT_LENS_FAULTS: `corrupt-ids-file:${file(stack)}` }),
    async body(run) {
      const step = Math.floor(run.events.length / count);
      poisoned = Array.from({ length: count }, (_, i) => run.events[i * step]?.id as string);
      writeFileSync(file(run.stack), `${poisoned.join('\n')}\n`);
    },
    async beforeCompare(run) {
      const dead = await listDeadLetters(run.redis, new SessionBuffer(run.redis, run.stack.config));
      const ids = dead.map((d) => d.id).sort();
      run.figures.deadLetters = ids.length;
      if (JSON.stringify(ids) !== JSON.stringify([...poisoned].sort())) {
        run.failures.push(`dead letters ${ids.length} are not exactly the ${poisoned.length} corrupted rows (e.g. ${ids.find((id) => !poisoned.includes(id)) ?? poisoned.find((id) => !ids.includes(id))})`);
      }
      rmSync(file(run.stack));
      // the operator's command, as a process
      const out = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, [BIN, 'dead-letters', 'redrive', '--all'], { env: run.stack.env() }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout))),
      );
      run.figures.redrive = out.trim().split(' ')[0] ?? '';
      await drainBuffer(run.redis, run.stack.config, 120_000);
      run.figures.deadLettersAfterRedrive = await deadLetterCount(run);
      if (run.figures.deadLettersAfterRedrive !== 0) run.failures.push(`${run.figures.deadLettersAfterRedrive} dead letters left after the redrive`);
    },
  };
}
