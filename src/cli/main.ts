/**
 * `event-lens`: the command line. One file per subcommand; each parses its
 * flags and calls into the rest of the code. Errors print one line (or the
 * list of config problems) to stderr and exit 1.
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { EventLensError } from '../errors.js';
import { registerBench } from './bench.js';
import { registerDeadLetters } from './dead-letters.js';
import { registerDemo } from './demo.js';
import { registerFailed } from './failed.js';
import { registerGenerate } from './generate.js';
import { registerMigrate } from './migrate.js';
import { registerMigrateLegacy } from './migrate-legacy.js';
import { err } from './output.js';
import { registerQuery } from './query.js';
import { registerReplay } from './replay.js';
import { registerReport } from './report.js';
import { registerServe } from './serve.js';
import { registerStatus } from './status.js';
import { registerWorker } from './worker.js';

// output into a closed pipe (`event-lens query … | head -1`) ends quietly: the reader has what it wanted
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
}

/** The package's version, from package.json (two levels above both src/cli and dist/cli). */
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('event-lens')
  .description('Event Lens: BullMQ in, Redis Lua session buffer with page durations, ClickHouse out')
  .version(version, '-V, --version', 'print the version')
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
registerServe(program);
registerDeadLetters(program);
registerFailed(program);

try {
  await program.parseAsync(process.argv);
  process.exitCode ??= 0;
} catch (e) {
  const message = e instanceof EventLensError || e instanceof Error ? e.message : String(e);
  err(`event-lens: ${message}`);
  // exit now: a command that failed half-way may still hold connections open
  process.exit(1);
}
