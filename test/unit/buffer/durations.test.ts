import { describe, expect, it } from 'vitest';
import { computeSessionRows, settlingEvents, type SessionEvent } from '../../../src/buffer/durations.js';

const T = 30 * 60_000;
const s = 1_000;
const e = (id: string, at: number, kind: SessionEvent['kind']): SessionEvent => ({ id, createdAtMs: at, kind });
const durations = (events: SessionEvent[]): Record<string, number | null> =>
  Object.fromEntries([...computeSessionRows(events, T)].map(([id, f]) => [id, f.duration]));

describe('computeSessionRows', () => {
  it('D1: a screen_view lasts until the next screen_view or session_end', () => {
    expect(durations([e('v1', 0, 'v'), e('c', 5 * s, 'o'), e('v2', 20 * s, 'v'), e('end', 50 * s, 'e')])).toMatchObject({
      v1: 20_000,
      v2: 30_000,
      c: null,
    });
  });

  it('D2: without a following boundary it runs to the last event after it, else NULL', () => {
    expect(durations([e('v1', 0, 'v'), e('c1', 4 * s, 'o'), e('c2', 9 * s, 'o')]).v1).toBe(9_000);
    expect(durations([e('v1', 0, 'v')]).v1).toBeNull();
  });

  it('D3: a gap longer than the timeout ends the view at the last event before the gap', () => {
    const d = durations([e('v1', 0, 'v'), e('c', 10 * s, 'o'), e('v2', 10 * s + T + 1, 'v')]);
    expect(d.v1).toBe(10_000);
    expect(d.v2).toBeNull();
    expect(durations([e('v1', 0, 'v'), e('v2', T + 1, 'v')]).v1).toBeNull();
  });

  it('D3: activity that keeps the session alive is not a gap', () => {
    const clicks = Array.from({ length: 5 }, (_, i) => e(`c${i}`, (i + 1) * 10 * 60_000, 'o'));
    expect(durations([e('v1', 0, 'v'), ...clicks, e('v2', 55 * 60_000, 'v')]).v1).toBe(55 * 60_000);
  });

  it('D4: a session_end lasts from the first event of the session and counts its screen views', () => {
    const rows = computeSessionRows([e('c0', 0, 'o'), e('v1', 3 * s, 'v'), e('v2', 8 * s, 'v'), e('end', 12 * s, 'e')], T);
    expect(rows.get('end')).toEqual({ duration: 12_000, screenViews: 2 });
  });

  it('orders equal createdAt by id and ignores repeated ids', () => {
    const d = durations([e('b', 0, 'v'), e('a', 0, 'v'), e('a', 0, 'v'), e('c', 7 * s, 'v')]);
    expect(d).toEqual({ a: 0, b: 7_000, c: null });
  });
});

describe('settlingEvents', () => {
  it('a screen_view is settled by the next boundary of its segment; other events by their own arrival', () => {
    const by = settlingEvents([e('v1', 0, 'v'), e('c', 5 * s, 'o'), e('v2', 20 * s, 'v'), e('end', 50 * s, 'e')], T);
    expect(Object.fromEntries(by)).toEqual({ v1: 'v2', c: 'c', v2: 'end', end: 'end' });
  });

  it('an idle gap settles the last view before it through the first event after it; the last view waits for finalisation', () => {
    const by = settlingEvents([e('v1', 0, 'v'), e('c', 10 * s, 'o'), e('c2', 10 * s + T + 1, 'o'), e('v2', 10 * s + T + 2, 'v')], T);
    expect(by.get('v1')).toBe('c2');
    expect(by.get('v2')).toBeNull();
  });

  it('uses createdAt order, not arrival order', () => {
    const by = settlingEvents([e('v2', 9 * s, 'v'), e('v1', 0, 'v')], T);
    expect(by.get('v1')).toBe('v2');
  });
});
