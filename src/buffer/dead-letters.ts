/**
 * The dead-letter lists as an operator sees them: rows ClickHouse rejected as
 * bad data (one list per shard and stream, `el:{N}:dead` and
 * `el:{N}:sessions:dead`), each with the server's message. An entry is named
 * `<shard>/<stream>/<row id>`; `redrive` moves its row back to the ready list
 * atomically (lua/redriveDead-3.lua), so the flusher inserts it again after the
 * cause was fixed, and running it twice cannot insert the row twice.
 */
import type { RowStream } from './keys.js';
import { redriveDead } from './scripts.js';
import type { SessionBuffer } from './session-buffer.js';
import type { RedisClient } from '../ops/redis.js';


export interface DeadEntry {
  /** `<shard>/<stream>/<row id>` */
  ref: string;
  shard: number;
  stream: RowStream;
  id: string;
  error: string;
  /** The row as ClickHouse received it. */
  row: string;
  /** The entry's exact text in the list (what redrive removes). */
  entry: string;
}

function keysOf(buffer: SessionBuffer, shard: number, stream: RowStream): { dead: string; ready: string; stats: string } {
  const sk = buffer.shardKeys(shard);
  return stream === 'events' ? { dead: sk.dead, ready: sk.ready, stats: sk.stats } : { dead: sk.sessionsDead, ready: sk.sessionsReady, stats: sk.stats };
}

function parseEntry(entry: string, shard: number, stream: RowStream): DeadEntry {
  let parsed: { error?: unknown; row?: unknown; text?: unknown } = {};
  try {
    parsed = JSON.parse(entry) as typeof parsed;
  } catch {
    // kept as it is: listed with an unknown id
  }
  const row = typeof parsed.text === 'string' ? parsed.text : typeof parsed.row === 'string' ? parsed.row : JSON.stringify(parsed.row ?? null);
  const id = String((parsed.row as { id?: unknown } | null)?.id ?? '?');
  return { ref: `${shard}/${stream}/${id}`, shard, stream, id, error: String(parsed.error ?? ''), row, entry };
}

/** Every dead letter, shard by shard (events, then sessions). */
export async function listDeadLetters(redis: RedisClient, buffer: SessionBuffer): Promise<DeadEntry[]> {
  const out: DeadEntry[] = [];
  for (let shard = 0; shard < buffer.settings.bufferShards; shard += 1) {
    for (const stream of ['events', 'sessions'] as const) {
      const entries = await redis.lrange(keysOf(buffer, shard, stream).dead, 0, -1);
      for (const entry of entries) out.push(parseEntry(entry, shard, stream));
    }
  }
  return out;
}

/** Re-drives the given entries; returns how many rows went back to ready (an entry gone already counts 0). */
export async function redriveDeadLetters(redis: RedisClient, buffer: SessionBuffer, entries: readonly DeadEntry[]): Promise<number> {
  let moved = 0;
  for (const e of entries) if (await redriveDead(redis, keysOf(buffer, e.shard, e.stream), e.entry, e.row)) moved += 1;
  return moved;
}
