import { createWriteStream } from 'node:fs';
import type { Command } from 'commander';
import { generateEvents } from '../generate/model.ts';

const int = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} ${JSON.stringify(value)}: expected a whole number >= 0`);
  return n;
};

const fraction = (name: string) => (value: string): number => {
  const n = Number(value);
  if (!(n >= 0 && n <= 1)) throw new Error(`${name} ${JSON.stringify(value)}: expected a number from 0 to 1`);
  return n;
};

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('write a realistic NDJSON event stream (seeded: the same options give the same bytes)')
    .requiredOption('--sessions <n>', 'number of sessions', int('--sessions'))
    .option('--seed <s>', 'random seed', int('--seed'), 1)
    .option('--jitter-ms <ms>', 'largest random arrival delay', int('--jitter-ms'), 3_000)
    .option('--late-fraction <f>', 'share of events that arrive 30..90 s late', fraction('--late-fraction'), 0.002)
    .option('-o, --output <file>', 'write to a file instead of standard output')
    .action(async (opts: { sessions: number; seed: number; jitterMs: number; lateFraction: number; output?: string }) => {
      const events = generateEvents({ sessions: opts.sessions, seed: opts.seed, jitterMs: opts.jitterMs, lateFraction: opts.lateFraction });
      const sink = opts.output ? createWriteStream(opts.output) : process.stdout;
      for (const e of events) {
        if (!sink.write(`${JSON.stringify(e)}\n`)) await new Promise((r) => sink.once('drain', r));
      }
      if (opts.output) await new Promise((r) => (sink as ReturnType<typeof createWriteStream>).end(r));
    });
}
