/**
 * `npm run test:chaos [-- --events N] [-- --only a,b]`: runs the chaos
 * scenarios one after another, prints one line per scenario and a summary
 * line, and exits non-zero if anything was lost, duplicated or wrong, or a
 * scenario's own check failed.
 */
import { Command } from 'commander';
import type { ScenarioResult } from './harness.js';
import { SCENARIOS } from './suite.js';

const program = new Command('test:chaos')
  .option('--events <n>', 'events per scenario (at least 100 000 for the full suite)', (v) => Number(v), 100_000)
  .option('--only <names>', 'comma-separated scenario names')
  .option('--seed <n>', 'stream seed', (v) => Number(v), 7)
  .parse();
const opts = program.opts<{ events: number; only?: string; seed: number }>();
const only = opts.only?.split(',').map((s) => s.trim());
const unknown = only?.filter((n) => !SCENARIOS.some((s) => s.name === n)) ?? [];
if (unknown.length > 0) {
  process.stderr.write(`unknown scenario(s): ${unknown.join(', ')}; known: ${SCENARIOS.map((s) => s.name).join(', ')}\n`);
  process.exit(2);
}

const results: ScenarioResult[] = [];
for (const scenario of SCENARIOS) {
  if (only && !only.includes(scenario.name)) continue;
  process.stderr.write(`chaos: ${scenario.name} (${opts.events} events)...\n`);
  let result: ScenarioResult;
  try {
    result = await scenario.run({ events: opts.events, seed: opts.seed });
  } catch (err) {
    result = { name: scenario.name, events: opts.events, lost: 0, duplicated: 0, wrong: 0, seconds: 0, figures: {}, failures: [`crashed: ${(err as Error).stack ?? String(err)}`] };
  }
  results.push(result);
  const figures = Object.entries(result.figures).map(([k, v]) => `${k}=${v}`).join(' ');
  process.stdout.write(
    `${result.failures.length === 0 && result.lost + result.duplicated + result.wrong === 0 ? 'ok  ' : 'FAIL'} ${result.name}: events=${result.events} ` +
      `lost=${result.lost} duplicated=${result.duplicated} wrong=${result.wrong} seconds=${result.seconds}${figures ? ` ${figures}` : ''}\n`,
  );
  for (const f of result.failures) process.stdout.write(`     ${f}\n`);
}
const sum = (k: 'lost' | 'duplicated' | 'wrong'): number => results.reduce((n, r) => n + r[k], 0);
const failed = results.filter((r) => r.failures.length > 0).length;
process.stdout.write(`chaos: ${results.length} scenarios, lost=${sum('lost')} duplicated=${sum('duplicated')} wrong=${sum('wrong')}${failed ? ` failed_checks=${failed}` : ''}\n`);
process.exit(sum('lost') + sum('duplicated') + sum('wrong') + failed === 0 ? 0 : 1);
