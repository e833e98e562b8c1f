import { describe, expect, it } from 'vitest';
import { benchTargets, type TargetInputs } from '../../../src/bench/targets.js';

const inputs: TargetInputs = {
  redisCpuUsPerEventBatched: 4.2,
  batchedVsPerEventLua: 2.5,
  singleVsNoop: 0.5,
  endToEndVsRawInsert: 0.61,
  workerCpuUsPerEvent: 9,
  redisBytesPerHeldEvent: 800,
  meanPayloadBytes: 650,
  endToEndP99Ms: 12_500,
  graceMs: 10_000,
  scriptP99Growth: 1.2,
  flushVsRawInsert: 0.9,
  longSessionCallMs: 0.04,
  longSessionEvents: 50_000,
};

describe('benchTargets', () => {
  it('lists every measure of the performance targets, keyed as bench --json prints them, with met / not met', () => {
    const targets = benchTargets(inputs);
    expect(Object.keys(targets)).toEqual([
      'redisCpuUsPerEvent.batched',
      'ratios.batchedVsPerEventLua',
      'ratios.singleVsNoop',
      'ratios.endToEndVsRawInsert',
      'workerCpuUsPerEvent',
      'redisBytesPerHeldEvent - meanPayloadBytes',
      'endToEnd.p99Ms',
      'ratios.scriptP99Growth',
      'ratios.flushVsRawInsert',
      'longSession.callMs (50000 events)',
    ]);
    expect(targets['redisCpuUsPerEvent.batched']).toEqual({ value: 4.2, target: '<= 8', met: true });
    expect(targets['ratios.singleVsNoop']).toEqual({ value: 0.5, target: '>= 0.5', met: true });
    expect(targets['ratios.endToEndVsRawInsert']).toEqual({ value: 0.61, target: '>= 0.5', met: true });
    expect(targets['workerCpuUsPerEvent']).toEqual({ value: 9, target: '<= 20', met: true });
    expect(targets['longSession.callMs (50000 events)']).toEqual({ value: 0.04, target: '< 0.1', met: true });
    expect(targets['redisBytesPerHeldEvent - meanPayloadBytes']).toEqual({ value: 150, target: '<= 200', met: true });
    // GRACE_MS + 2 s
    expect(targets['endToEnd.p99Ms']).toEqual({ value: 12_500, target: '<= 12000', met: false });
  });

  it('counts a measure that could not be taken as not met', () => {
    expect(benchTargets({ ...inputs, workerCpuUsPerEvent: null })['workerCpuUsPerEvent']).toEqual({ value: null, target: '<= 20', met: false });
    expect(benchTargets({ ...inputs, longSessionCallMs: null })['longSession.callMs (50000 events)']?.met).toBe(false);
  });
});
