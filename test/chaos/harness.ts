/**
 * The chaos harness: private redis-server processes, real `event-lens worker`
 * processes, a generated stream with a known expected result, and the
 * row-by-row comparison of ClickHouse against it.
 *
 * The expected rows come from the reference model (src/buffer/durations.ts),
 * which the in-process replay is tested against (test/integration/replay).
 * Sessions still held when the stream ends are finalised by a sweep with a
 * clock past the inactivity timeout, as `replay --drain` does, so a scenario
 * does not wait 30 minutes.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue } from 'bullmq';
import { computeSessionRows, type RowFigures } from '../../src/buffer/durations.js';
import { SessionBuffer } from '../../src/buffer/session-buffer.js';
import { openClickHouse, queryRows, type ClickHouse } from '../../src/clickhouse/client.js';
import { loadConfig, type Config } from '../../src/config.js';
import { pendingJobs } from '../../src/queue/drain.js';
import { DEMO_VISIBILITY, eventsBySession, generateEvents, type GeneratedEvent } from '../../src/generate/model.js';
import type { RedisClient } from '../../src/ops/redis.js';

export { sleep };

export const BIN = path.resolve(import.meta.dirname, '../../bin/event-lens.js');

export interface ScenarioResult {
  name: string;
  events: number;
  lost: number;
  duplicated: number;
  wrong: number;
  seconds: number;
  /** Scenario-specific figures, printed as key=value. */
  figures: Record<string, string | number>;
  /** Checks of the scenario that did not hold (besides the three counts). */
  failures: string[];
}

export interface Proc {
  name: string;
  role: string;
  child: ChildProcess;
  /** Parsed pino lines of stderr (non-JSON lines kept as { raw }). */
  log: Record<string, unknown>[];
  /** Raw stderr, for the no-secrets-in-logs check. */
  stderr: string[];
}

/** The standard chaos settings: grace covers a crashed worker's retry delay (1.5 × WORKER_LOCK_MS). */
export const CHAOS_ENV: Record<string, string> = {
  QUEUE_NAME: 'chaos',
  GRACE_MS: '15000',
  WORKER_LOCK_MS: '4000',
  SWEEP_INTERVAL_MS: '200',
  FLUSH_INTERVAL_MS: '500',
  WORKER_CONCURRENCY: '8',
  METRICS_PORT: '0',
  LOG_LEVEL: 'info',
};

/** Worker processes on one Redis and one embedded ClickHouse directory. */
export class Stack {
  readonly procs = new Map<string, Proc>();
  /** Every process exit that the harness did not cause. */
  readonly unexpectedExits: string[] = [];
  readonly dataDir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-chaos-'));
  readonly config: Config;
  private readonly expected = new Set<ChildProcess>();
  private ch?: ClickHouse;

  constructor(
    readonly redisUrl: string,
    readonly extraEnv: Record<string, string> = {},
  ) {
    this.config = loadConfig(this.env());
  }

  env(extra: Record<string, string> = {}): Record<string, string> {
    return { PATH: process.env.PATH ?? '', REDIS_URL: this.redisUrl, EVENT_LENS_DATA_DIR: this.dataDir, ...CHAOS_ENV, ...this.extraEnv, ...extra };
  }

  start(name: string, role: 'ingest' | 'flush' | 'all', extra: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, [BIN, 'worker', '--role', role], { env: this.env(extra), stdio: ['ignore', 'ignore', 'pipe'] });
    const proc: Proc = { name, role, child, log: [], stderr: [] };
    let partial = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line) continue;
        proc.stderr.push(line);
        try {
          proc.log.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          proc.log.push({ raw: line });
        }
      }
    });
    child.once('exit', (code, signal) => {
      if (!this.expected.has(child)) this.unexpectedExits.push(`${name} (${role}) exited: code ${String(code)} signal ${String(signal)}`);
    });
    // a restarted process keeps its predecessors' lines: the log checks look at every line
    const previous = this.procs.get(name);
    if (previous) {
      proc.log = previous.log.concat(proc.log);
      proc.stderr = previous.stderr.concat(proc.stderr);
    }
    this.procs.set(name, proc);
    return proc;
  }

  /** Kills a process (SIGKILL by default) and waits for its exit; the harness expected it. */
  async kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<number | null> {
    const proc = this.procs.get(name);
    if (!proc) throw new Error(`no process ${name}`);
    this.expected.add(proc.child);
    return exited(proc.child, signal);
  }

  /** Marks a process's coming exit as expected (a fault hook that kills it). */
  expectExit(name: string): Promise<number | null> {
    const proc = this.procs.get(name);
    if (!proc) throw new Error(`no process ${name}`);
    this.expected.add(proc.child);
    return exited(proc.child);
  }

  /** The flush process serves the embedded ClickHouse; waits until it advertises its endpoint. */
  async clickhouse(): Promise<ClickHouse> {
    if (this.ch) return this.ch;
    const endpoint = path.join(this.dataDir, 'endpoint.json');
    const deadline = Date.now() + 60_000;
    while (!existsSync(endpoint)) {
      if (Date.now() > deadline) throw new Error('the flush process did not advertise its ClickHouse endpoint within 60 s');
      await sleep(100);
    }
    this.ch = await openClickHouse(this.config);
    return this.ch;
  }

  /** Stops every process with SIGTERM; returns the exit codes that were not 0. */
  async stop(): Promise<string[]> {
    await this.ch?.close();
    this.ch = undefined;
    const bad: string[] = [];
    await Promise.all(
      [...this.procs.values()].map(async (p) => {
        if (p.child.exitCode !== null || p.child.signalCode !== null) return;
        this.expected.add(p.child);
        const code = await exited(p.child, 'SIGTERM', 60_000);
        if (code !== 0) bad.push(`${p.name} exited with ${String(code)} on SIGTERM`);
      }),
    );
    return bad;
  }

  cleanup(): void {
    for (const p of this.procs.values()) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    const keep = process.env.CHAOS_KEEP_LOGS;
    if (keep) {
      mkdirSync(keep, { recursive: true });
      for (const p of this.procs.values()) writeFileSync(path.join(keep, `${p.name}.log`), `${p.stderr.join('\n')}\n`);
    }
    rmSync(this.dataDir, { recursive: true, force: true });
  }

  /** Log lines of every process whose msg matches. */
  logged(pattern: RegExp): Record<string, unknown>[] {
    return [...this.procs.values()].flatMap((p) => p.log.filter((l) => typeof l.msg === 'string' && pattern.test(l.msg)));
  }
}

/** Waits for a process to exit, sending `signal` first when given; SIGKILL after `timeoutMs`. */
export function exited(child: ChildProcess, signal?: NodeJS.Signals, timeoutMs = 30_000): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
    if (signal) child.kill(signal);
  });
}

/** A realistic generated stream (arrival jitter inside the grace window, no late events). */
export function stream(events: number, seed: number): GeneratedEvent[] {
  // sessions average about 8.4 events: ask for 20 % more and cut the stream at `events`
  return generateEvents({ sessions: Math.ceil((events / 8.4) * 1.2), seed, jitterMs: 5_000, lateFraction: 0, visibilityFraction: DEMO_VISIBILITY }).slice(0, events);
}

/** The rows the reference model gives the stream, by event id. */
export function expectedRows(events: readonly GeneratedEvent[], timeoutMs: number): Map<string, RowFigures> {
  const { sessions, sessionless } = eventsBySession(events);
  const expected = new Map<string, RowFigures>();
  for (const id of sessionless) expected.set(id, { duration: null, screenViews: 0, engaged: null });
  for (const list of sessions) for (const [id, f] of computeSessionRows(list, timeoutMs)) expected.set(id, f);
  return expected;
}

export async function queueCounts(queue: Queue): Promise<{ pending: number; failed: number }> {
  const [pending, failed] = await Promise.all([pendingJobs(queue), queue.getFailedCount()]);
  return { pending, failed };
}

/**
 * Finalises every held session (clock past the inactivity timeout) and waits
 * until the flush process has written every row.
 */
export async function drainBuffer(redis: RedisClient, config: Config, timeoutMs: number): Promise<void> {
  const buffer = new SessionBuffer(redis, config);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    await buffer.sweep(Date.now() + config.sessionTimeoutMs + config.graceMs + 1);
    const backlog = await buffer.backlog();
    if (backlog.every((b) => b.heldSessions === 0 && b.ready === 0 && b.inBatch === 0)) return;
    if (Date.now() > deadline) throw new Error(`buffer not drained within ${timeoutMs} ms: ${JSON.stringify(backlog.filter((b) => b.heldSessions + b.ready + b.inBatch > 0))}`);
    await sleep(250);
  }
}

/** Compares the events table with the expected rows: lost, duplicated and wrong counts. */
export async function compare(ch: ClickHouse, expected: Map<string, RowFigures>): Promise<{ lost: number; duplicated: number; wrong: number; rows: number }> {
  const rows = await queryRows<{ id: string; duration: number | null; screenViews: number; engagedMs: number | null; n: string | number }>(
    ch,
    `SELECT id, duration, screenViews, engagedMs, count() AS n FROM ${ch.database}.events GROUP BY id, duration, screenViews, engagedMs`,
  );
  const copies = new Map<string, number>();
  let wrong = 0;
  let total = 0;
  for (const r of rows) {
    const n = Number(r.n);
    total += n;
    copies.set(r.id, (copies.get(r.id) ?? 0) + n);
    const f = expected.get(r.id);
    const number = (v: number | null): number | null => (v === null ? null : Number(v));
    if (!f || f.duration !== number(r.duration) || f.screenViews !== Number(r.screenViews) || f.engaged !== number(r.engagedMs)) wrong += 1;
  }
  let lost = 0;
  let duplicated = 0;
  for (const id of expected.keys()) if (!copies.has(id)) lost += 1;
  for (const n of copies.values()) duplicated += n - 1;
  return { lost, duplicated, wrong, rows: total };
}

/** Lines that must never appear in logs: payload fields, IPs, credentials. */
export function leaks(stack: Stack, secrets: readonly string[]): string[] {
  const found: string[] = [];
  for (const p of stack.procs.values()) {
    for (const line of p.stderr) {
      for (const s of secrets) if (s && line.includes(s)) found.push(`${p.name}: ${line.slice(0, 200)}`);
    }
  }
  return found;
}
