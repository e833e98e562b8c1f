/**
 * The duration rules of DESIGN §2 as a pure function of one session's events.
 * lua/sweep-4.lua computes the same thing incrementally inside Redis
 * (viewFigures / endFigures in lua/includes/durations.lua, which
 * lua/ingest-4.lua also uses to settle rows); this
 * module is the reference the tests compare it with, and the place where the
 * rules are written down in full.
 *
 * Events are ordered by (createdAt, id). A *boundary* is a screen_view ('v')
 * or a session_end ('e'). A gap of more than `timeoutMs` between two
 * consecutive events splits the session into *segments* (the session went
 * idle: D3).
 *
 * - screen_view (D1, D2, D3): the time to the next boundary in its segment;
 *   with none, the time to the last event of its segment after it; with no
 *   event after it, NULL.
 * - session_end (D4): the time from the first event of its visit (the events
 *   of its segment after the previous session_end) to the session_end;
 *   `screenViews` is the number of screen_views in that visit.
 * - every other event: duration NULL, screenViews 0.
 */
import type { EventKind } from '../event/normalize.js';

export interface SessionEvent {
  id: string;
  createdAtMs: number;
  kind: EventKind;
}

export interface RowFigures {
  duration: number | null;
  screenViews: number;
}

/** Total order of events within a session: createdAt, then id (byte order, as Redis sorts members). */
export function compareEvents(a: SessionEvent, b: SessionEvent): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const isBoundary = (kind: EventKind): boolean => kind === 'v' || kind === 'e';

/** Duration and screenViews of every event of one session (deduplicated by id). */
export function computeSessionRows(events: readonly SessionEvent[], timeoutMs: number): Map<string, RowFigures> {
  const seen = new Set<string>();
  const sorted = events.filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true))).sort(compareEvents);
  const out = new Map<string, RowFigures>();
  sorted.forEach((event, i) => {
    switch (event.kind) {
      case 'v':
        out.set(event.id, { duration: viewDuration(sorted, i, timeoutMs), screenViews: 0 });
        return;
      case 'e':
        out.set(event.id, sessionEndFigures(sorted, i, timeoutMs));
        return;
      case 'o':
        out.set(event.id, { duration: null, screenViews: 0 });
        return;
      default: {
        const never: never = event.kind;
        throw new Error(`unknown event kind ${String(never)}`);
      }
    }
  });
  return out;
}

function viewDuration(sorted: readonly SessionEvent[], i: number, timeoutMs: number): number | null {
  const view = sorted[i] as SessionEvent;
  let last: SessionEvent | undefined;
  for (let j = i + 1; j < sorted.length; j += 1) {
    const next = sorted[j] as SessionEvent;
    const prev = sorted[j - 1] as SessionEvent;
    if (next.createdAtMs - prev.createdAtMs > timeoutMs) break;
    if (isBoundary(next.kind)) return next.createdAtMs - view.createdAtMs;
    last = next;
  }
  return last ? last.createdAtMs - view.createdAtMs : null;
}

function sessionEndFigures(sorted: readonly SessionEvent[], i: number, timeoutMs: number): RowFigures {
  const end = sorted[i] as SessionEvent;
  let first = end;
  let screenViews = 0;
  for (let j = i - 1; j >= 0; j -= 1) {
    const prev = sorted[j] as SessionEvent;
    if (prev.kind === 'e' || first.createdAtMs - prev.createdAtMs > timeoutMs) break;
    if (prev.kind === 'v') screenViews += 1;
    first = prev;
  }
  return { duration: end.createdAtMs - first.createdAtMs, screenViews };
}

/**
 * Which event settles each event's row (the arrival that makes its figures
 * final): a screen_view is settled by the next boundary of its segment, or,
 * with none, by the first event after the idle gap that ends its segment;
 * `null` when nothing after it does (only finalisation settles it). Every
 * other event is settled by its own arrival. Used to measure settle-to-visible
 * latency.
 */
export function settlingEvents(events: readonly SessionEvent[], timeoutMs: number): Map<string, string | null> {
  const sorted = [...events].sort(compareEvents);
  const settledBy = new Map<string, string | null>();
  for (let i = 0; i < sorted.length; i += 1) {
    const e = sorted[i] as SessionEvent;
    if (e.kind !== 'v') {
      settledBy.set(e.id, e.id);
      continue;
    }
    let by: string | null = null;
    for (let j = i + 1; j < sorted.length; j += 1) {
      const next = sorted[j] as SessionEvent;
      const prev = sorted[j - 1] as SessionEvent;
      if (next.createdAtMs - prev.createdAtMs > timeoutMs || isBoundary(next.kind)) {
        by = next.id;
        break;
      }
    }
    settledBy.set(e.id, by);
  }
  return settledBy;
}
