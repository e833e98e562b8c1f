/**
 * Scenario 6: 10 000 malformed events mixed into the stream.
 *
 * - 70 % ride inside the stream's own batch jobs, next to good events;
 * - 20 % are single-event jobs (including values that are not objects);
 * - 10 % are NDJSON lines sent by `event-lens replay --enqueue` (broken JSON,
 *   invalid UTF-8), together with events DESIGN §1 says are data, not errors:
 *   `__proto__` / `constructor` property keys, and a createdAt far in the
 *   future, which is clamped and flagged.
 *
 * Every malformed event must be rejected with a reason naming the broken
 * field; no process may crash; every good event must be right.
 */
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Job } from 'bullmq';
import { queryRows } from '../../src/clickhouse/client.js';
import { CLAMPED_PROPERTY } from '../../src/event/normalize.js';
import type { GeneratedEvent } from '../../src/generate/model.js';
import { JOB_EVENT, type JobResult } from '../../src/queue/jobs.js';
import { BIN } from './harness.js';
import type { Run, ScenarioSpec } from './scenarios.js';

interface Bad {
  kind: string;
  /** The field the rejection must name. */
  field: string;
  event: unknown;
}

const T = '2026-10-01T10:00:00.000Z';
const nest = (depth: number): unknown => (depth === 0 ? 1 : { a: nest(depth - 1) });

/** The n-th malformed event (kinds cycle); its id (when it has one) carries n. */
export function malformed(n: number): Bad {
  const id = `bad-${n}`;
  const base = { id, projectId: 'acme-shop', name: 'screen_view', createdAt: T, sessionId: `bad-session-${n % 50}`, path: '/x' };
  const kinds: (() => Bad)[] = [
    () => ({ kind: 'wrong-type', field: 'name', event: { ...base, name: 123 } }),
    () => ({ kind: 'missing-field', field: 'projectId', event: { id, name: 'screen_view', createdAt: T } }),
    () => ({ kind: 'huge-string', field: 'path', event: { ...base, path: `/${'x'.repeat(100_000)}` } }),
    () => ({ kind: 'deep-nesting', field: 'properties', event: { ...base, properties: nest(40) } }),
    () => ({ kind: '10000-properties', field: 'properties', event: { ...base, properties: Object.fromEntries(Array.from({ length: 10_000 }, (_, i) => [`k${i}`, i])) } }),
    () => ({ kind: 'nul-byte', field: 'name', event: { ...base, name: 'screen\u0000view' } }),
    () => ({ kind: 'lone-surrogate', field: 'path', event: { ...base, path: '/a\uD800b' } }),
    () => ({ kind: 'far-past', field: 'createdAt', event: { ...base, createdAt: '1970-01-02T00:00:00Z' } }),
    () => ({ kind: 'unparseable-time', field: 'createdAt', event: { ...base, createdAt: 'yesterday' } }),
    () => ({ kind: 'non-object-properties', field: 'properties', event: { ...base, properties: ['a', 'b'] } }),
    () => ({ kind: 'wrong-type-session', field: 'sessionId', event: { ...base, sessionId: { id: 1 } } }),
    () => ({ kind: 'bad-id', field: 'id', event: { ...base, id: `bad ${n}#` } }),
    () => ({ kind: 'unknown-field', field: 'colour', event: { ...base, colour: 'red' } }),
    () => ({ kind: 'non-finite-number', field: 'latitude', event: { ...base, latitude: 1e400 } }),
  ];
  return (kinds[n % kinds.length] as () => Bad)();
}

/** Non-object events, only possible as single-event jobs. */
const NON_OBJECTS: unknown[] = ['just a string', 42, null, [1, 2, 3], true];

const badNumber = (value: unknown): number | undefined => {
  const m = /bad.(\d+)/.exec(typeof value === 'string' ? value : '');
  return m ? Number(m[1]) : undefined;
};

export function badInput(total = 10_000): ScenarioSpec {
  const inBatches = Math.round(total * 0.7);
  const singles = Math.round(total * 0.2);
  const lines = total - inBatches - singles;
  const batchBad = new Map<number, Bad>();
  const single = new Map<string, Bad>();
  const special: { id: string; kind: 'proto' | 'future' }[] = [];
  let next = 0;
  return {
    name: 'bad-input',
    keepCompleted: 1_000_000,
    failedJobs: singles,
    mix(batch: GeneratedEvent[], job: number, jobs: number): object[] {
      // spread over the first (at most) 200 jobs, whatever the stream's length
      const carriers = Math.min(jobs, 200);
      if (job >= carriers) return batch;
      const perJob = Math.ceil(inBatches / carriers);
      const out: object[] = [...batch];
      for (let k = 0; k < perJob && next < inBatches; k += 1) {
        const bad = malformed(next);
        batchBad.set(next, bad);
        next += 1;
        out.splice(Math.floor((k * out.length) / perJob), 0, bad.event as object);
      }
      return out;
    },
    async body(run: Run) {
      // single-event jobs, sent alongside the stream
      for (let i = 0; i < singles; i += 1) {
        const n = inBatches + i;
        const bad: Bad = i % 10 === 0 ? { kind: 'not-an-object', field: 'event', event: NON_OBJECTS[i % NON_OBJECTS.length] } : malformed(n);
        single.set(`bad-${n}`, bad);
        await run.queue.add(JOB_EVENT, { event: bad.event }, { jobId: `bad-${n}`, removeOnFail: false, attempts: 3 });
      }
      // NDJSON lines through `replay --enqueue`: broken JSON and invalid UTF-8, plus data-not-errors
      const file = path.join(run.stack.dataDir, 'bad.ndjson');
      const chunks: Buffer[] = [];
      const badLines = new Set<number>();
      let lineNo = 0;
      for (let i = 0; i < lines; i += 1) {
        lineNo += 1;
        badLines.add(lineNo);
        chunks.push(i % 2 === 0 ? Buffer.from(`{"id":"line-${i}","name":"screen_view",`, 'utf8') : Buffer.concat([Buffer.from('{"id":"u', 'utf8'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('","projectId":"p","name":"x","createdAt":"' + T + '"}', 'utf8')]));
        chunks.push(Buffer.from('\n'));
        if (i % 10 === 0) {
          lineNo += 1;
          const id = `special-${i}`;
          const proto = i % 20 === 0;
          special.push({ id, kind: proto ? 'proto' : 'future' });
          const text = proto
            ? `{"id":"${id}","projectId":"acme-shop","name":"click","createdAt":"${T}","properties":{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"x":"1"}}}}`
            : `{"id":"${id}","projectId":"acme-shop","name":"click","createdAt":"2100-01-01T00:00:00Z"}`;
          chunks.push(Buffer.from(`${text}\n`, 'utf8'));
          run.expected.set(id, { duration: null, screenViews: 0, engaged: null });
        }
      }
      writeFileSync(file, Buffer.concat(chunks));
      const stderr = await new Promise<string>((resolve, reject) => {
        execFile(process.execPath, [BIN, 'replay', '--enqueue', file], { env: run.stack.env() }, (error, _stdout, err) => (error ? reject(new Error(err)) : resolve(err)));
      });
      const reported = [...stderr.matchAll(/^line (\d+): (event: must be valid (JSON|UTF-8).*)$/gm)];
      const lineMisses = [...badLines].filter((l) => !reported.some((m) => Number(m[1]) === l));
      run.figures.ndjsonLinesRejected = reported.length;
      if (lineMisses.length > 0) run.failures.push(`${lineMisses.length} bad NDJSON lines were not reported, e.g. line ${lineMisses[0]}`);

    },
    // after the queue drained and the rows were compared: every job's verdict
    async after(run: Run) {
      run.figures.malformed = batchBad.size + single.size + lines;
      await checkVerdicts(run, batchBad, single);
      await checkSpecial(run, special);
    },
  };
}

async function checkVerdicts(run: Run, batchBad: Map<number, Bad>, single: Map<string, Bad>): Promise<void> {
  const wrongReason: string[] = [];
  // batch jobs: rejected events by index, with reasons
  const seen = new Set<number>();
  const completed = await run.queue.getJobs(['completed'], 0, -1);
  for (const job of completed) {
    const result = job.returnvalue as JobResult | undefined;
    const events = (job.data as { events?: unknown[] }).events ?? [];
    for (const r of result?.rejected ?? []) {
      const event = events[r.index] as { id?: unknown } | undefined;
      const n = badNumber(event?.id);
      const bad = n === undefined ? undefined : batchBad.get(n);
      if (!bad || n === undefined) {
        wrongReason.push(`a good event was rejected: ${r.reason}`);
        continue;
      }
      seen.add(n);
      if (!r.reason.startsWith(bad.field) && !r.reason.includes(` ${bad.field}`)) wrongReason.push(`${bad.kind}: "${r.reason.slice(0, 120)}" does not name ${bad.field}`);
    }
  }
  const batchMissed = [...batchBad.keys()].filter((n) => !seen.has(n));
  // single-event jobs: failed as unrecoverable, reason in failedReason, after one attempt
  let singleRejected = 0;
  let retried = 0;
  for (const [jobId, bad] of single) {
    const job = await Job.fromId(run.queue, jobId);
    if (!job || !job.failedReason) {
      wrongReason.push(`single job ${jobId} (${bad.kind}) did not fail`);
      continue;
    }
    singleRejected += 1;
    if (job.attemptsMade > 1) retried += 1;
    if (!job.failedReason.startsWith(bad.field) && !job.failedReason.includes(` ${bad.field}`)) {
      wrongReason.push(`${bad.kind}: "${job.failedReason.slice(0, 120)}" does not name ${bad.field}`);
    }
  }
  run.figures.batchEventsRejected = seen.size;
  run.figures.singleJobsRejected = singleRejected;
  run.figures.reasonsWithoutField = wrongReason.length;
  if (batchMissed.length > 0) run.failures.push(`${batchMissed.length} malformed events in batches were not rejected, e.g. ${batchBad.get(batchMissed[0] as number)?.kind}`);
  if (retried > 0) run.failures.push(`${retried} invalid single-event jobs were retried (they must fail at once, as unrecoverable)`);
  if (wrongReason.length > 0) run.failures.push(`${wrongReason.length} rejections do not name the field, e.g. ${wrongReason[0]}`);
}

async function checkSpecial(run: Run, special: { id: string; kind: 'proto' | 'future' }[]): Promise<void> {
  const ch = await run.stack.clickhouse();
  const rows = await queryRows<{ id: string; createdAt: string; props: Record<string, string> }>(
    ch,
    `SELECT id, toString(createdAt) AS createdAt, properties AS props FROM ${ch.database}.events WHERE id IN {ids:Array(String)}`,
    { ids: special.map((s) => s.id) },
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  let proto = 0;
  let clamped = 0;
  for (const s of special) {
    const row = byId.get(s.id);
    if (!row) continue; // counted as lost by the comparison
    if (s.kind === 'proto' && row.props['__proto__.polluted'] === 'yes' && row.props['constructor.prototype.x'] === '1') proto += 1;
    if (s.kind === 'future' && row.props[CLAMPED_PROPERTY]?.startsWith('2100-01-01') && !row.createdAt.startsWith('2100')) clamped += 1;
  }
  run.figures.protoKeysStoredAsData = proto;
  run.figures.futureClampedAndFlagged = clamped;
  const wantProto = special.filter((s) => s.kind === 'proto').length;
  const wantFuture = special.length - wantProto;
  if (proto !== wantProto) run.failures.push(`${wantProto - proto} events with __proto__/constructor keys were not stored as plain data`);
  if (clamped !== wantFuture) run.failures.push(`${wantFuture - clamped} far-future events were not clamped and flagged`);
}
