#!/usr/bin/env node
/**
 * Medians of `bench --json` runs of two checkouts, side by side, as a
 * Markdown table (what docs/performance.md prints). Run the two releases by
 * turns (the machine is shared and noisy), save each run's JSON, then:
 *
 *   node scripts/bench-medians.mjs --before old-1.json old-2.json old-3.json \
 *                                  --after new-1.json new-2.json new-3.json
 *
 * A measure missing from one side (a release that did not print it) is shown
 * as "-". Also prints every run's value of the measures with a target, since
 * some targets ("in every run") are about each run, not the median: a second
 * table lists every target with both sides' runs and the verdict on the median.
 */
import { readFileSync } from 'node:fs';

const MEASURES = [
  ['bullmqNoop', 'BullMQ no-op worker, jobs/s'],
  ['workerSingle', 'worker, one event per job, events/s'],
  ['workerBatch', 'worker, batch jobs, events/s'],
  ['luaPerEvent', 'per-event Lua, events/s'],
  ['bufferBatched', 'buffer, batched ingest, events/s'],
  ['bufferSweep', 'buffer, sweep, rows/s'],
  ['rawInsert', 'plain insert, rows/s'],
  ['flush', 'flusher, rows/s'],
  ['endToEnd.eventsPerSec', 'producer → ClickHouse, events/s'],
  ['endToEnd.p99Ms', 'end-to-end p99, ms'],
  ['workerCpuUsPerEvent', 'worker main-thread CPU, µs/event'],
  ['redisCpuUsPerEvent.batched', 'Redis CPU, batched, µs/event'],
  ['bytesAbovePayload', 'Redis bytes per held event − payload'],
  ['ratios.batchedVsPerEventLua', 'batched ÷ per-event Lua'],
  ['ratios.singleVsNoop', 'single ÷ no-op'],
  ['ratios.endToEndVsRawInsert', 'end to end ÷ plain insert'],
  ['ratios.flushVsRawInsert', 'flusher ÷ plain insert'],
  ['ratios.scriptP99Growth', 'script p99 at 1M ÷ 10k held sessions'],
  ['longSessionCallMs', 'one-event call on the longest session, ms'],
];

function parseArgs(argv) {
  const sides = { before: [], after: [] };
  let side = null;
  for (const a of argv) {
    if (a === '--before' || a === '--after') side = a.slice(2);
    else if (side) sides[side].push(a);
    else throw new Error(`${a}: put files after --before or --after`);
  }
  if (sides.before.length === 0 || sides.after.length === 0) throw new Error('usage: --before <json…> --after <json…>');
  return sides;
}

function value(run, path) {
  if (path === 'bytesAbovePayload') return typeof run.redisBytesPerHeldEvent === 'number' ? run.redisBytesPerHeldEvent - run.meanPayloadBytes : undefined;
  if (path === 'longSessionCallMs') {
    const rows = run.longSession?.rows ?? run.longSession;
    if (!Array.isArray(rows) || rows.length === 0) return undefined;
    const last = rows[rows.length - 1];
    return last.callMs ?? Math.max(last.appendP50Ms ?? 0, last.insertP50Ms ?? 0);
  }
  let v = run;
  for (const k of path.split('.')) v = v?.[k];
  return typeof v === 'number' ? v : undefined;
}

function median(xs) {
  const s = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
  if (s.length === 0) return undefined;
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const fmt = (x) => (x === undefined ? '-' : Math.abs(x) >= 100 ? Math.round(x).toLocaleString('en-US').replace(/,/g, ' ') : String(Math.round(x * 1000) / 1000));

const sides = parseArgs(process.argv.slice(2));
const runs = { before: sides.before.map((f) => JSON.parse(readFileSync(f, 'utf8'))), after: sides.after.map((f) => JSON.parse(readFileSync(f, 'utf8'))) };
console.log(`| measure | before (median of ${runs.before.length}) | after (median of ${runs.after.length}) | after ÷ before | after, each run |`);
console.log('|---|---|---|---|---|');
for (const [path, label] of MEASURES) {
  const b = median(runs.before.map((r) => value(r, path)));
  const a = median(runs.after.map((r) => value(r, path)));
  const each = runs.after.map((r) => fmt(value(r, path))).join(', ');
  console.log(`| ${label} (\`${path}\`) | ${fmt(b)} | ${fmt(a)} | ${a !== undefined && b ? fmt(a / b) : '-'} | ${each} |`);
}

// the targets `bench` checked, each run's value on both sides and the verdict on this side's median
const targetKeys = [...new Set(runs.after.flatMap((r) => Object.keys(r.targets ?? {})))];
if (targetKeys.length > 0) {
  console.log('');
  console.log('| target | before, each run | after, each run | after, median | met (median) |');
  console.log('|---|---|---|---|---|');
  // the long-session key names its session length; the previous release may name another or none
  const same = (run, key) => run.targets?.[key] ?? Object.entries(run.targets ?? {}).find(([k]) => k.split(' ')[0] === key.split(' ')[0])?.[1];
  for (const key of targetKeys) {
    const before = runs.before.map((r) => same(r, key)?.value ?? undefined);
    const after = runs.after.map((r) => same(r, key)?.value ?? undefined);
    const m = median(after);
    const target = same(runs.after[0], key)?.target ?? '';
    const [op, bound] = target.split(' ');
    const met = m === undefined ? 'no' : (op === '<=' ? m <= Number(bound) : op === '>=' ? m >= Number(bound) : m < Number(bound)) ? 'yes' : 'no';
    console.log(`| \`${key}\` ${target} | ${before.map(fmt).join(', ')} | ${after.map(fmt).join(', ')} | ${fmt(m)} | ${met} |`);
  }
}
