import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DotsError, fromDots, toDots } from '../../../src/event/dots.js';

/** Nested objects with dot-free, non-empty keys and string leaves: the domain where fromDots inverts toDots. */
const key = fc.string({ minLength: 1, maxLength: 8 }).filter((k) => !k.includes('.'));
const nested = fc.letrec((tie) => ({
  node: fc.dictionary(key, fc.oneof({ depthSize: 'small' }, fc.string({ maxLength: 10 }), tie('node')), { minKeys: 1, maxKeys: 4 }),
})).node;

describe('toDots', () => {
  it('flattens nested objects and arrays into dotted keys', () => {
    expect(toDots({ a: { b: 1, c: [true, 'x'] }, d: 'y' })).toEqual({ 'a.b': '1', 'a.c.0': 'true', 'a.c.1': 'x', d: 'y' });
  });

  it('drops null and undefined and keeps strings that look like JSON as strings', () => {
    expect(toDots({ a: null, b: undefined, c: '{"x":1}', d: '[1,2' })).toEqual({ c: '{"x":1}', d: '[1,2' });
  });

  it('keeps __proto__ and constructor as plain keys without touching Object.prototype', () => {
    const input = JSON.parse('{"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"x": 1}}}') as unknown;
    const out = toDots(input);
    expect(out['__proto__.polluted']).toBe('yes');
    expect(out['constructor.prototype.x']).toBe('1');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects a dotted key that collides with a nested one, naming it', () => {
    expect(() => toDots({ 'a.b': 1, a: { b: 2 } })).toThrow(/properties\.a\.b: key appears twice/);
  });

  it('rejects nesting deeper than the limit, naming the path', () => {
    const deep = { a: { b: { c: { d: 1 } } } };
    expect(() => toDots(deep, 'properties', { maxProperties: 10, maxPropertyDepth: 2, maxPropertyKeyLength: 99, maxPropertyValueLength: 99 })).toThrow(
      /properties\.a\.b\.c: nesting must be at most 2 levels deep/,
    );
  });

  it('rejects more properties than the limit', () => {
    const many = Object.fromEntries(Array.from({ length: 11 }, (_, i) => [`k${i}`, i]));
    expect(() => toDots(many, 'properties', { maxProperties: 10, maxPropertyDepth: 8, maxPropertyKeyLength: 99, maxPropertyValueLength: 99 })).toThrow(
      DotsError,
    );
  });

  it('rejects non-object input, non-finite numbers and long values', () => {
    expect(() => toDots([1, 2])).toThrow(/must be a JSON object/);
    expect(() => toDots({ n: Number.NaN })).toThrow(/properties\.n: number must be finite/);
    expect(() => toDots({ v: 'x'.repeat(9000) })).toThrow(/properties\.v: value must be at most/);
  });

  it('round-trips any nested object of dot-free keys through fromDots', () => {
    fc.assert(
      fc.property(nested, (obj) => {
        expect(JSON.parse(JSON.stringify(fromDots(toDots(obj))))).toEqual(JSON.parse(JSON.stringify(obj)));
      }),
    );
  });

  it('is stable: the same input always gives the same keys in the same order', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const input = { v: value };
        let first: string | undefined;
        try {
          first = JSON.stringify(toDots(input));
        } catch (err) {
          expect(err).toBeInstanceOf(DotsError);
          return;
        }
        expect(JSON.stringify(toDots(input))).toBe(first);
      }),
    );
  });

  it('only ever outputs string values, and never pollutes prototypes for any JSON input', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          const out = toDots({ root: value, __proto__x: value });
          for (const v of Object.values(out)) expect(typeof v).toBe('string');
        } catch (err) {
          expect(err).toBeInstanceOf(DotsError);
        }
        expect(Object.prototype).not.toHaveProperty('root');
      }),
    );
  });
});

describe('fromDots', () => {
  it('keeps a leaf and a nested value at the same path without losing either', () => {
    expect(JSON.parse(JSON.stringify(fromDots({ a: '1', 'a.b': '2' })))).toEqual({ a: { '': '1', b: '2' } });
  });

  it('treats __proto__ segments as data', () => {
    const out = fromDots({ '__proto__.x': '1' });
    expect(Object.prototype.hasOwnProperty.call(out, '__proto__')).toBe(true);
    expect(({} as Record<string, unknown>).x).toBeUndefined();
  });
});
