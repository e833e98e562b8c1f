/**
 * CPU profiles for `bench --profile <dir>`: the worker during the endToEnd
 * measure (in-process, with node:inspector's profiler, so only that phase is
 * in the profile) and `serve` during `bench http` (its own process, started
 * with --cpu-prof). A profile is a `.cpuprofile` that Chrome DevTools and
 * speedscope open; `topSelfTime` prints the functions with the most self
 * time, which is what the closing notes of performance work list.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import path from 'node:path';

/** Starts profiling this process; the returned function stops and writes `<dir>/<name>.cpuprofile`, returning its path. */
export async function startProfile(dir: string, name: string): Promise<() => Promise<string>> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  // 100 µs between samples (the default is 1 ms): enough samples for a phase of a few seconds
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return async () => {
    const { profile } = await session.post('Profiler.stop');
    session.disconnect();
    const file = path.join(dir, `${name}.cpuprofile`);
    writeFileSync(file, JSON.stringify(profile));
    return file;
  };
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

export interface SelfTime {
  fn: string;
  where: string;
  /** Share of the busy samples (all but idle), 0..1. */
  share: number;
}

/** The functions with the most self time in a .cpuprofile (samples counted per function and place). */
export function topSelfTime(file: string, n = 10): SelfTime[] {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as { nodes: ProfileNode[]; samples?: number[] };
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const counts = new Map<string, { fn: string; where: string; hits: number }>();
  // samples list the leaf node of each sample; hitCount holds the same when samples are absent
  const hits: [ProfileNode, number][] = profile.samples
    ? [...profile.samples.reduce((m, id) => m.set(id, (m.get(id) ?? 0) + 1), new Map<number, number>())].map(([id, c]) => [byId.get(id) as ProfileNode, c])
    : profile.nodes.map((node) => [node, node.hitCount ?? 0]);
  let total = 0;
  for (const [node, c] of hits) {
    const fn = node.callFrame.functionName || '(anonymous)';
    // waiting is not work: shares are of the busy samples
    if (fn === '(idle)') continue;
    total += c;
    const url = node.callFrame.url.replace(/^file:\/\//, '').replace(/^.*\/node_modules\//, '').replace(/^.*\/(src|dist)\//, '$1/');
    const where = url ? `${url}:${node.callFrame.lineNumber + 1}` : '';
    const key = `${fn}\u0000${where}`;
    const entry = counts.get(key) ?? { fn, where, hits: 0 };
    entry.hits += c;
    counts.set(key, entry);
  }
  return [...counts.values()]
    .sort((a, b) => b.hits - a.hits)
    .slice(0, n)
    .map((e) => ({ fn: e.fn, where: e.where, share: total ? e.hits / total : 0 }));
}
