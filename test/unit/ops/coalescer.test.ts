import { describe, expect, it } from 'vitest';
import { Coalescer } from '../../../src/ops/coalescer.js';
import type { IncomingEvent } from '../../../src/queue/producer.js';

const ev = (name: string): IncomingEvent => ({ projectId: 'p', name, createdAt: 1 });

describe('Coalescer', () => {
  it('sends the requests of one event-loop turn as one batch, at once when nothing is in flight', async () => {
    const sent: string[][] = [];
    const c = new Coalescer<IncomingEvent>(async (events) => void sent.push(events.map((e) => e.name)), { maxEvents: 100, windowMs: 60_000 });
    await Promise.all([c.add([ev('a')]), c.add([ev('b'), ev('c')]), c.add([ev('d')])]);
    expect(sent).toEqual([['a', 'b', 'c', 'd']]);
  });

  it('gathers what arrives while a batch is in flight and sends it when that batch is acknowledged', async () => {
    const sent: string[][] = [];
    let release: () => void = () => {};
    const c = new Coalescer<IncomingEvent>(
      async (events) => {
        sent.push(events.map((e) => e.name));
        if (sent.length === 1) await new Promise<void>((r) => (release = r));
      },
      { maxEvents: 100, windowMs: 60_000 },
    );
    const first = c.add([ev('a')]);
    await new Promise((r) => setTimeout(r, 5));
    const later = [c.add([ev('b')]), c.add([ev('c')])];
    await new Promise((r) => setTimeout(r, 5));
    expect(sent).toEqual([['a']]);
    release();
    await Promise.all([first, ...later]);
    expect(sent).toEqual([['a'], ['b', 'c']]);
  });

  it('sends at the window when the batch in flight takes longer', async () => {
    const sent: string[][] = [];
    const c = new Coalescer<IncomingEvent>(
      async (events) => {
        sent.push(events.map((e) => e.name));
        if (sent.length === 1) await new Promise((r) => setTimeout(r, 200));
      },
      { maxEvents: 100, windowMs: 20 },
    );
    const first = c.add([ev('a')]);
    await new Promise((r) => setTimeout(r, 5));
    await c.add([ev('b')]);
    expect(sent).toEqual([['a'], ['b']]);
    await first;
  });

  it('sends at maxEvents without waiting for the window, and never splits a request', async () => {
    const sent: string[][] = [];
    const c = new Coalescer<IncomingEvent>(async (events) => void sent.push(events.map((e) => e.name)), { maxEvents: 3, windowMs: 60_000 });
    await Promise.all([c.add([ev('a'), ev('b')]), c.add([ev('c'), ev('d')]), c.add([ev('e')])]);
    expect(sent).toEqual([['a', 'b'], ['c', 'd', 'e']]);
  });

  it('fails every request of a failed batch and no other', async () => {
    let calls = 0;
    const c = new Coalescer<IncomingEvent>(
      async () => {
        calls += 1;
        if (calls === 1) throw new Error('redis down');
      },
      { maxEvents: 2, windowMs: 60_000 },
    );
    const results = await Promise.allSettled([c.add([ev('a')]), c.add([ev('b')]), c.add([ev('c'), ev('d')])]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled']);
  });

  it('flush sends what is collecting and waits for batches in flight', async () => {
    const sent: string[][] = [];
    const c = new Coalescer<IncomingEvent>(
      async (events) => {
        await new Promise((r) => setTimeout(r, 30));
        sent.push(events.map((e) => e.name));
      },
      { maxEvents: 100, windowMs: 60_000 },
    );
    const pending = c.add([ev('a')]);
    await c.flush();
    expect(sent).toEqual([['a']]);
    await pending;
    // after a flush (shutdown) a late request is sent at once, not after the window
    await c.add([ev('b')]);
    expect(sent).toEqual([['a'], ['b']]);
  });

  it("gives each caller the results of its own items, in order", async () => {
    const c = new Coalescer<string, string>(async (items) => items.map((x) => x.toUpperCase()), { maxEvents: 100, windowMs: 60_000 });
    const [a, b, empty] = await Promise.all([c.add(['a', 'b']), c.add(['c']), c.add([])]);
    expect([a, b, empty]).toEqual([['A', 'B'], ['C'], []]);
  });
});
