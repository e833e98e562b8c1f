/**
 * `event-lens`: the command line. One file per subcommand; each parses its
 * flags and calls into the rest of the code. Errors print one line (or the
 * list of config problems) to stderr and exit 1.
 */
import { Command } from 'commander';
import { EventLensError } from '../errors.ts';
import { registerBench } from './bench.ts';
import { registerDemo } from './demo.ts';
import { registerGenerate } from './generate.ts';
import { registerMigrate } from './migrate.ts';
import { registerMigrateLegacy } from './migrate-legacy.ts';
import { err } from './output.ts';
import { registerQuery } from './query.ts';
import { registerReplay } from './replay.ts';
import { registerReport } from './report.ts';
import { registerStatus } from './status.ts';
import { registerWorker } from './worker.ts';

const program = new Command('event-lens')
  .description('Event Lens: BullMQ in, Redis Lua session buffer with page durations, ClickHouse out')
  .showHelpAfterError();

registerReplay(program);
registerGenerate(program);
registerQuery(program);
registerReport(program);
registerMigrate(program);
registerMigrateLegacy(program);
registerStatus(program);
registerDemo(program);
registerBench(program);
registerWorker(program);

try {
  await program.parseAsync(process.argv);
  process.exitCode ??= 0;
} catch (e) {
  const message = e instanceof EventLensError || e instanceof Error ? e.message : String(e);
  err(`event-lens: ${message}`);
  // exit now: a command that failed half-way may still hold connections open
  process.exit(1);
}
