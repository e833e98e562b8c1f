import { parseEventRow } from '../event/columns.js';
import type { Command } from 'commander';
import { listDeadLetters, redriveDeadLetters, type DeadEntry } from '../buffer/dead-letters.js';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { loadConfig } from '../config.js';
import type { RedisClient } from '../ops/redis.js';
import { withRedis } from './context.js';
import { out, table } from './output.js';

async function withBuffer<T>(fn: (buffer: SessionBuffer, redis: RedisClient) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  return withRedis(config, (redis) => fn(new SessionBuffer(redis, config), redis));
}

const select = (all: DeadEntry[], refs: readonly string[]): DeadEntry[] => {
  const missing = refs.filter((r) => !all.some((e) => e.ref === r || e.id === r));
  if (missing.length > 0) throw new Error(`dead-letters: no dead letter ${missing.map((m) => JSON.stringify(m)).join(', ')} (see event-lens dead-letters list)`);
  return all.filter((e) => refs.includes(e.ref) || refs.includes(e.id));
};

export function registerDeadLetters(program: Command): void {
  const cmd = program.command('dead-letters').description('rows ClickHouse rejected as bad data: list, show, and re-drive them after the cause is fixed');
  cmd
    .command('list')
    .description('one line per dead letter: <shard>/<stream>/<row id> and the server\'s message')
    .option('--json', 'print JSONEachRow', false)
    .action(async (opts: { json: boolean }) =>
      withBuffer(async (buffer, redis) => {
        const entries = await listDeadLetters(redis, buffer);
        if (opts.json) for (const e of entries) out(JSON.stringify({ ref: e.ref, shard: e.shard, stream: e.stream, id: e.id, error: e.error }));
        else out(entries.length === 0 ? 'no dead letters' : table(entries.map((e) => ({ ref: e.ref, error: e.error.replace(/\s+/g, ' ').slice(0, 120) }))));
      }),
    );
  cmd
    .command('show')
    .description('the whole entry: the message and the row as ClickHouse received it (a positional events row shown by column)')
    .argument('<ref>', '<shard>/<stream>/<row id>, or the row id')
    .action(async (ref: string) =>
      withBuffer(async (buffer, redis) => {
        for (const e of select(await listDeadLetters(redis, buffer), [ref])) out(JSON.stringify({ ref: e.ref, error: e.error, row: parseEventRow(e.row) }, null, 2));
      }),
    );
  cmd
    .command('redrive')
    .description('put rows back on the ready list for the flusher (each row moves once, however often this runs)')
    .argument('[refs...]', '<shard>/<stream>/<row id>s or row ids')
    .option('--all', 'every dead letter', false)
    .action(async (refs: string[], opts: { all: boolean }) =>
      withBuffer(async (buffer, redis) => {
        if (!opts.all && refs.length === 0) throw new Error('dead-letters redrive: name the dead letters, or pass --all');
        const all = await listDeadLetters(redis, buffer);
        const chosen = opts.all ? all : select(all, refs);
        const moved = await redriveDeadLetters(redis, buffer, chosen);
        out(`redriven=${moved} of ${chosen.length} (the flusher inserts them on its next round)`);
      }),
    );
}
