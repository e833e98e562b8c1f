/**
 * `bench buffer --against <checkout>`: this build's session buffer and another
 * checkout's (a previous release, built), on the same redis-server and the
 * same generated events, alternating round by round so that a noisy machine
 * weighs on both alike. Each side runs its own `benchBuffer` and its own
 * event normalisation; the figures are the medians of the rounds.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BufferBenchResult, benchBuffer as BenchBuffer } from './buffer-bench.js';
import type { NormalizedEvent } from '../event/normalize.js';
import type { GeneratedEvent } from '../generate/model.js';
import type { BufferSettings } from '../config.js';
import type { RedisClient } from '../ops/redis.js';

/** What one side of the comparison brings: its benchBuffer and its own normalisation of the same generated events. */
export interface BufferSide {
  label: string;
  bench: typeof BenchBuffer;
  normalize: (events: readonly GeneratedEvent[]) => NormalizedEvent[];
  /** Its own configuration from the environment (releases differ in their buffer settings). */
  settings: (env: NodeJS.ProcessEnv) => BufferSettings;
}

/** The measures compared, each with whether a larger value is better. */
export const COMPARED: readonly { key: keyof BufferBenchResult; higherIsBetter: boolean; unit: string }[] = [
  { key: 'bufferBatchedPerSec', higherIsBetter: true, unit: 'events/s' },
  { key: 'bufferSweepPerSec', higherIsBetter: true, unit: 'events/s' },
  { key: 'redisCpuUsPerEventBatched', higherIsBetter: false, unit: 'µs/event' },
  { key: 'redisBytesPerHeldEvent', higherIsBetter: false, unit: 'bytes' },
  { key: 'redisBytesPerHeldEventRecommended', higherIsBetter: false, unit: 'bytes' },
];

export interface ComparedMeasure {
  measure: string;
  unit: string;
  against: number[];
  current: number[];
  /** current median ÷ against median */
  ratio: number;
  better: boolean;
}

/** A checkout's name and version from its package.json, e.g. "event-lens 0.1.0 (../old)". */
export function checkoutLabel(checkout: string): string {
  try {
    const { version } = JSON.parse(readFileSync(path.join(checkout, 'package.json'), 'utf8')) as { version?: string };
    return `${version ?? '?'} (${checkout})`;
  } catch {
    return checkout;
  }
}

/** This checkout's root (src/bench and dist/bench are two levels below it). */
export const THIS_CHECKOUT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Loads the built buffer bench of another checkout (its dist/, as `npm run build` leaves it). */
export async function loadSide(checkout: string): Promise<BufferSide> {
  const dist = path.resolve(checkout, 'dist');
  const file = (rel: string): string => {
    const f = path.join(dist, rel);
    if (!existsSync(f)) throw new Error(`--against ${checkout}: no ${path.relative(checkout, f)} (run npm ci && npm run build there first)`);
    return pathToFileURL(f).href;
  };
  const bench = (await import(file('bench/buffer-bench.js'))) as { benchBuffer: typeof BenchBuffer };
  const norm = (await import(file('event/normalize.js'))) as { normalizeEvent: (e: GeneratedEvent, o: { receivedAtMs: number; maxFutureMs: number }) => NormalizedEvent };
  const config = (await import(file('config.js'))) as { loadConfig: (env: NodeJS.ProcessEnv) => BufferSettings };
  return { label: checkoutLabel(checkout), bench: bench.benchBuffer, normalize: normalizer(norm.normalizeEvent), settings: (env) => config.loadConfig(env) };
}

/** Normalises generated events as the bench does: received when created. */
export function normalizer(normalizeEvent: (e: GeneratedEvent, o: { receivedAtMs: number; maxFutureMs: number }) => NormalizedEvent): BufferSide['normalize'] {
  return (events) => events.map((e) => normalizeEvent(e, { receivedAtMs: Date.parse(e.createdAt), maxFutureMs: 3_600_000 }));
}

const median = (values: readonly number[]): number => {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

/** Runs both sides `rounds` times, alternating which goes first; each run writes under its own key prefix and removes it. */
export async function compareBuffers(
  redis: RedisClient,
  generated: readonly GeneratedEvent[],
  env: NodeJS.ProcessEnv,
  keyPrefix: string,
  against: BufferSide,
  current: BufferSide,
  rounds: number,
  progress: (label: string) => void = () => {},
): Promise<ComparedMeasure[]> {
  const sides = [against, current];
  const events = sides.map((side) => side.normalize(generated));
  const results: BufferBenchResult[][] = [[], []];
  for (let round = 0; round < rounds; round += 1) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) {
      progress(`round ${round + 1}/${rounds}: ${sides[i]?.label}`);
      const side = sides[i] as BufferSide;
      const r = await side.bench(redis, events[i] as NormalizedEvent[], { ...side.settings(env), keyPrefix: `${keyPrefix}-${i}-${round}` });
      (results[i] as BufferBenchResult[]).push(r);
    }
  }
  return COMPARED.map(({ key, higherIsBetter, unit }) => {
    const a = (results[0] as BufferBenchResult[]).map((r) => Number(r[key] ?? NaN));
    const c = (results[1] as BufferBenchResult[]).map((r) => Number(r[key] ?? NaN));
    const ratio = Number((median(c) / (median(a) || 1)).toFixed(3));
    return { measure: key, unit, against: a, current: c, ratio, better: higherIsBetter ? ratio > 1 : ratio < 1 };
  });
}
