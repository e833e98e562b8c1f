/**
 * The performance targets `bench` checks, each next to the measure it is
 * computed from (keys as `bench --json` prints them). Pure, so the list and
 * its verdicts are unit-tested; a measure that could not be taken is not met.
 */
export interface TargetInputs {
  redisCpuUsPerEventBatched: number;
  batchedVsPerEventLua: number;
  singleVsNoop: number;
  endToEndVsRawInsert: number;
  /** null when the main thread's CPU time cannot be read (no /proc). */
  workerCpuUsPerEvent: number | null;
  redisBytesPerHeldEvent: number;
  meanPayloadBytes: number;
  endToEndP99Ms: number;
  graceMs: number;
  scriptP99Growth: number;
  flushVsRawInsert: number;
  /** The slower median of a one-event call (append, insert) on the longest session, inside Redis; null without SLOWLOG. */
  longSessionCallMs: number | null;
  longSessionEvents: number;
}

export interface Target {
  value: number | null;
  target: string;
  met: boolean;
}

const atLeast = (value: number | null, floor: number): Target => ({ value, target: `>= ${floor}`, met: value !== null && value >= floor });
const atMost = (value: number | null, ceiling: number): Target => ({ value, target: `<= ${ceiling}`, met: value !== null && value <= ceiling });

export function benchTargets(m: TargetInputs): Record<string, Target> {
  return {
    'redisCpuUsPerEvent.batched': atMost(m.redisCpuUsPerEventBatched, 8),
    'ratios.batchedVsPerEventLua': atLeast(m.batchedVsPerEventLua, 2),
    'ratios.singleVsNoop': atLeast(m.singleVsNoop, 0.5),
    'ratios.endToEndVsRawInsert': atLeast(m.endToEndVsRawInsert, 0.5),
    workerCpuUsPerEvent: atMost(m.workerCpuUsPerEvent, 20),
    'redisBytesPerHeldEvent - meanPayloadBytes': atMost(m.redisBytesPerHeldEvent - m.meanPayloadBytes, 200),
    'endToEnd.p99Ms': atMost(m.endToEndP99Ms, m.graceMs + 2_000),
    'ratios.scriptP99Growth': atMost(m.scriptP99Growth, 1.5),
    'ratios.flushVsRawInsert': atLeast(m.flushVsRawInsert, 0.8),
    [`longSession.callMs (${m.longSessionEvents} events)`]: { value: m.longSessionCallMs, target: '< 0.1', met: m.longSessionCallMs !== null && m.longSessionCallMs < 0.1 },
  };
}
