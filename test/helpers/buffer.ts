/** Small helpers shared by the buffer tests. */
import type { Redis } from 'ioredis';
import type { BufferSettings } from '../../src/config.js';
import type { SessionBuffer } from '../../src/buffer/session-buffer.js';
import { normalizeEvent, type NormalizedEvent } from '../../src/event/normalize.js';
import type { RowFigures, SessionEvent } from '../../src/buffer/durations.js';
import { parseEventRow } from '../../src/event/columns.js';

export const T0 = Date.UTC(2026, 9, 1, 10, 0, 0);

export function settings(prefix: string, overrides: Partial<BufferSettings> = {}): BufferSettings {
  return {
    bufferShards: 4,
    keyPrefix: prefix,
    graceMs: 10_000,
    sessionTimeoutMs: 1_800_000,
    dedupWindowMs: 1_800_000,
    bufferTtlMs: 86_400_000,
    ...overrides,
  };
}

const NAMES = { v: 'screen_view', e: 'session_end', o: 'click', h: 'page_hidden', s: 'page_visible' } as const;

/** A normalized event of session `sessionId` in project `p1`. */
export function ev(e: SessionEvent & { sessionId?: string; projectId?: string }): NormalizedEvent {
  return normalizeEvent(
    {
      id: e.id,
      projectId: e.projectId ?? 'p1',
      name: NAMES[e.kind],
      createdAt: e.createdAtMs,
      ...(e.sessionId === '' ? {} : { sessionId: e.sessionId ?? 's1' }),
      ...(e.sliceMs === undefined ? {} : { visibleMs: e.sliceMs }),
      path: `/page/${e.id}`,
    },
    { receivedAtMs: e.createdAtMs, maxFutureMs: 3_600_000 },
  );
}

export interface EmittedRow {
  id: string;
  sessionId: string;
  name: string;
  duration: number | null;
  screenViews: number;
  engagedMs?: number | null;
}

/** Reads (without removing) every row in the ready lists and batches of all shards. */
export async function readyRows(redis: Redis, buffer: SessionBuffer): Promise<EmittedRow[]> {
  const rows: EmittedRow[] = [];
  for (let shard = 0; shard < buffer.settings.bufferShards; shard += 1) {
    const sk = buffer.shardKeys(shard);
    for (const key of [sk.batch, sk.ready]) {
      for (const text of await redis.lrange(key, 0, -1)) rows.push(parseEventRow(text) as unknown as EmittedRow);
    }
  }
  return rows;
}

/** Rows as a map id -> {duration, screenViews, engaged}, for comparisons with the reference model. */
export function figures(rows: readonly EmittedRow[]): Record<string, RowFigures> {
  const out: Record<string, RowFigures> = {};
  for (const r of [...rows].sort((a, b) => (a.id < b.id ? -1 : 1))) out[r.id] = { duration: r.duration, screenViews: r.screenViews, engaged: r.engagedMs ?? null };
  return out;
}
