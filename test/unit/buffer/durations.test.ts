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
    expect(rows.get('end')).toEqual({ duration: 12_000, screenViews: 2, engaged: null });
  });

  it('orders equal createdAt by id and ignores repeated ids', () => {
    const d = durations([e('b', 0, 'v'), e('a', 0, 'v'), e('a', 0, 'v'), e('c', 7 * s, 'v')]);
    expect(d).toEqual({ a: 0, b: 7_000, c: null });
  });
});

describe('engaged time (E1)', () => {
  const engaged = (events: SessionEvent[]): Record<string, number | null> =>
    Object.fromEntries([...computeSessionRows(events, T)].map(([id, f]) => [id, f.engaged]));

  it('is the duration when the page was never hidden, and NULL for every other event', () => {
    expect(engaged([e('v1', 0, 'v'), e('c', 5 * s, 'o'), e('v2', 20 * s, 'v'), e('end', 50 * s, 'e')])).toEqual({ v1: 20_000, c: null, v2: 30_000, end: null });
  });

  it('takes away the time between a page_hidden and the next page_visible inside the view', () => {
    const rows = engaged([e('v1', 0, 'v'), e('h', 5 * s, 'h'), e('sh', 65 * s, 's'), e('v2', 70 * s, 'v'), e('c', 80 * s, 'o')]);
    expect(rows).toMatchObject({ v1: 10_000, v2: 10_000, h: null, sh: null });
    expect(computeSessionRows([e('v1', 0, 'v'), e('h', 5 * s, 'h'), e('sh', 65 * s, 's'), e('v2', 70 * s, 'v')], T).get('v1')?.duration).toBe(70_000);
  });

  it('counts a view hidden at its end (the last page, a closed tab) until the hide', () => {
    expect(engaged([e('v1', 0, 'v'), e('v2', 10 * s, 'v'), e('h', 42 * s, 'h')])).toMatchObject({ v1: 10_000, v2: 32_000 });
  });

  it('a hide that lasts to the next boundary counts as hidden until it', () => {
    expect(engaged([e('v1', 0, 'v'), e('h', 4 * s, 'h'), e('v2', 30 * s, 'v')]).v1).toBe(4_000);
  });

  it('a page opened hidden (its first visibility event is a page_visible) is hidden from the view to it', () => {
    expect(engaged([e('v1', 0, 'v'), e('sh', 20 * s, 's'), e('v2', 50 * s, 'v')]).v1).toBe(30_000);
  });

  it('ignores a repeated hide or show and never goes below 0', () => {
    expect(engaged([e('v1', 0, 'v'), e('h1', 1 * s, 'h'), e('h2', 3 * s, 'h'), e('s1', 6 * s, 's'), e('s2', 7 * s, 's'), e('v2', 10 * s, 'v')]).v1).toBe(5_000);
    expect(engaged([e('v1', 0, 'v'), e('x', 0, 'h')]).v1).toBe(0);
  });

  it('sums client-measured slices when the view has them, capped at the duration', () => {
    const slice = (id: string, at: number, kind: 'h' | 's', sliceMs: number): SessionEvent => ({ id, createdAtMs: at, kind, sliceMs });
    expect(engaged([e('v1', 0, 'v'), slice('h1', 10 * s, 'h', 7_000), slice('s1', 20 * s, 's', 0), slice('h2', 30 * s, 'h', 4_000), e('v2', 40 * s, 'v')]).v1).toBe(11_000);
    expect(engaged([e('v1', 0, 'v'), slice('h1', 10 * s, 'h', 60_000)]).v1).toBe(10_000);
  });

  it('is NULL when the duration is, and stops at an idle gap as the duration does', () => {
    expect(engaged([e('v1', 0, 'v')]).v1).toBeNull();
    expect(engaged([e('v1', 0, 'v'), e('h', 10 * s, 'h'), e('sh', 10 * s + T + 1, 's')]).v1).toBe(10_000);
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
