/**
 * The reduced chaos set that runs with every `npm test` (and so in CI):
 * five scenarios of the full suite on shorter streams. The full suite, with
 * all eleven scenarios on 100 000 events each, is `npm run test:chaos`.
 */
import { describe, expect, it } from 'vitest';
import { badInput } from '../chaos/bad-input.js';
import { flusherCrash, poisonRows, redisCluster, redisRestart, runScenario, type ScenarioSpec } from '../chaos/scenarios.js';

const EVENTS = 10_000;

describe.sequential('chaos (reduced set; the full suite is npm run test:chaos)', () => {
  const cases: [ScenarioSpec, number][] = [
    [flusherCrash(), 1],
    [redisRestart, 2],
    [redisCluster, 3],
    [badInput(2_000), 4],
    [poisonRows(10), 5],
  ];
  for (const [spec, seed] of cases) {
    it(`${spec.name}: nothing lost, doubled or wrong`, { timeout: 240_000 }, async () => {
      const r = await runScenario(spec, { events: EVENTS, seed });
      expect({ lost: r.lost, duplicated: r.duplicated, wrong: r.wrong, failures: r.failures }).toEqual({ lost: 0, duplicated: 0, wrong: 0, failures: [] });
      expect(r.events).toBeGreaterThanOrEqual(EVENTS);
    });
  }
});
