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
 *
 * Engaged time (E1), screen_views only: the view's duration minus the time
 * the page was hidden inside it, from the visibility events ('h'
 * page_hidden, 's' page_visible; not boundaries, they start no page) between
 * the view and the end of its duration. The page is visible from the view
 * on, unless the first visibility event inside is a page_visible (it was
 * opened hidden, as a background tab is); a hide stays in force until a
 * page_visible or the end of the duration, so a view hidden at its end (the
 * last page, a closed tab) counts until the hide. When a visibility event
 * inside carries a client-measured slice (`sliceMs`, ms visible since the
 * client's previous send, as Plausible's `e`), the slices are summed instead,
 * capped at the duration. NULL when the duration is NULL; never below 0.
 */
import type { EventKind } from '../event/normalize.js';

export interface SessionEvent {
  id: string;
  createdAtMs: number;
  kind: EventKind;
  /** A visibility event's client-measured engaged slice, ms. */
  sliceMs?: number;
}

export interface RowFigures {
  duration: number | null;
  screenViews: number;
  /** E1: screen_views only; NULL otherwise and when the duration is. */
  engaged: number | null;
}

/** Total order of events within a session: createdAt, then id (byte order, as Redis sorts members). */
export function compareEvents(a: SessionEvent, b: SessionEvent): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs - b.createdAtMs;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

const isBoundary = (kind: EventKind): boolean => kind === 'v' || kind === 'e';
const isVisibility = (kind: EventKind): boolean => kind === 'h' || kind === 's';

/** Duration and screenViews of every event of one session (deduplicated by id). */
export function computeSessionRows(events: readonly SessionEvent[], timeoutMs: number): Map<string, RowFigures> {
  const seen = new Set<string>();
  const sorted = events.filter((e) => (seen.has(e.id) ? false : (seen.add(e.id), true))).sort(compareEvents);
  const out = new Map<string, RowFigures>();
  sorted.forEach((event, i) => {
    switch (event.kind) {
      case 'v':
        out.set(event.id, viewFigures(sorted, i, timeoutMs));
        return;
      case 'e':
        out.set(event.id, sessionEndFigures(sorted, i, timeoutMs));
        return;
      case 'o':
      case 'h':
      case 's':
        out.set(event.id, { duration: null, screenViews: 0, engaged: null });
        return;
      default: {
        const never: never = event.kind;
        throw new Error(`unknown event kind ${String(never)}`);
      }
    }
  });
  return out;
}

function viewFigures(sorted: readonly SessionEvent[], i: number, timeoutMs: number): RowFigures {
  const view = sorted[i] as SessionEvent;
  // the events inside the view's duration, and where it ends
  const inside: SessionEvent[] = [];
  let end: number | null = null;
  for (let j = i + 1; j < sorted.length; j += 1) {
    const next = sorted[j] as SessionEvent;
    const prev = sorted[j - 1] as SessionEvent;
    if (next.createdAtMs - prev.createdAtMs > timeoutMs) break;
    if (isBoundary(next.kind)) {
      end = next.createdAtMs;
      break;
    }
    inside.push(next);
  }
  if (end === null) end = inside.at(-1)?.createdAtMs ?? null;
  if (end === null) return { duration: null, screenViews: 0, engaged: null };
  const duration = end - view.createdAtMs;
  return { duration, screenViews: 0, engaged: engagedTime(view.createdAtMs, end, inside.filter((e) => isVisibility(e.kind))) };
}

/** E1 for a view from `start` to `end` with the visibility events inside, in order. */
export function engagedTime(start: number, end: number, visibility: readonly SessionEvent[]): number {
  const duration = end - start;
  const slices = visibility.filter((e) => e.sliceMs !== undefined);
  if (slices.length > 0) return Math.min(duration, slices.reduce((n, e) => n + (e.sliceMs as number), 0));
  let hidden = visibility[0]?.kind === 's';
  let since = start;
  let hiddenMs = 0;
  for (const e of visibility) {
    if (e.kind === 'h' && !hidden) {
      hidden = true;
      since = e.createdAtMs;
    } else if (e.kind === 's' && hidden) {
      hiddenMs += e.createdAtMs - since;
      hidden = false;
    }
  }
  if (hidden) hiddenMs += end - since;
  return duration - hiddenMs;
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
  return { duration: end.createdAtMs - first.createdAtMs, screenViews, engaged: null };
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
