/** The scenarios in the order `npm run test:chaos` runs them. */
import { badInput } from './bad-input.js';
import type { ScenarioResult } from './harness.js';
import {
  clickhouseOutage,
  clickhouseSystemic,
  flusherCrash,
  memoryPressure,
  poisonRows,
  producerDeadRedis,
  redisCluster,
  redisRestart,
  replicaCrashes,
  runScenario,
  sigtermRedisDown,
  type ScenarioOptions,
} from './scenarios.js';

export interface Scenario {
  name: string;
  run(options: ScenarioOptions): Promise<ScenarioResult>;
}

const spec = (s: Parameters<typeof runScenario>[0]): Scenario => ({ name: s.name, run: (o) => runScenario(s, o) });

export const SCENARIOS: Scenario[] = [
  spec(replicaCrashes),
  spec(flusherCrash()),
  spec(clickhouseOutage()),
  spec(redisRestart),
  spec(redisCluster),
  spec(badInput()),
  spec(memoryPressure()),
  spec(clickhouseSystemic()),
  spec(sigtermRedisDown()),
  spec(producerDeadRedis()),
  spec(poisonRows()),
];
