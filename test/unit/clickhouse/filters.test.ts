import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { buildFilters, FilterError, parseWhere } from '../../../src/clickhouse/filters.js';

const INJECTIONS = [
  "x' OR 1=1 --",
  "'; DROP TABLE events; --",
  'a\\\\\' OR \\\'1\\\'=\\\'1',
  '{f0_v:String}',
  '}{ evil: String }',
  'nul\u0000byte',
  'k'.repeat(10_000),
  '`name`',
  '"quoted"',
];

describe('buildFilters', () => {
  it('builds each operator with parameters only', () => {
    const built = buildFilters([
      { field: 'path', operator: 'is', value: '/a' },
      { field: 'properties.plan', operator: 'isNot', value: 'free' },
      { field: 'referrer', operator: 'contains', value: 'google' },
      { field: 'path', operator: 'startsWith', value: '/docs' },
      { field: 'utmCampaign', operator: 'regex', value: '^nov' },
      { field: 'properties.cart.total', operator: 'gt', value: 10 },
      { field: 'properties.cart.total', operator: 'lt', value: '99.5' },
      { field: 'properties.coupon', operator: 'exists' },
    ]);
    expect(built.sql).toBe(
      '(path = {f0_v:String}) AND (properties[{f1_k:String}] != {f1_v:String}) AND (position(referrer, {f2_v:String}) > 0) AND ' +
        '(startsWith(path, {f3_v:String})) AND (match(utmCampaign, {f4_v:String})) AND (toFloat64OrNull(properties[{f5_k:String}]) > {f5_v:Float64}) AND ' +
        '(toFloat64OrNull(properties[{f6_k:String}]) < {f6_v:Float64}) AND (mapContains(properties, {f7_k:String}))',
    );
    expect(built.params).toMatchObject({ f0_v: '/a', f1_k: 'plan', f1_v: 'free', f5_k: 'cart.total', f5_v: 10, f6_v: 99.5, f7_k: 'coupon' });
  });

  const sqlFor = (key: string, value: string, operator: 'is' | 'isNot' | 'contains' | 'startsWith' | 'regex' = 'is') =>
    buildFilters([
      { field: `properties.${key}`, operator, value },
      { field: 'path', operator, value },
    ]);

  it.each(INJECTIONS)('gives the same SQL text for %j as for a plain word, passing it only as parameters', (evil) => {
    const built = sqlFor(evil, evil);
    expect(built.sql).toBe(sqlFor('plain', 'plain').sql);
    expect(built.params).toEqual({ f0_k: evil, f0_v: evil, f1_v: evil });
  });

  it('never lets any property key or value change the SQL text', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), fc.constantFrom('is', 'isNot', 'contains', 'startsWith', 'regex') as fc.Arbitrary<'is'>, (key, value, operator) => {
        expect(sqlFor(key, value, operator).sql).toBe(sqlFor('k', 'v', operator).sql);
      }),
    );
  });

  it('rejects a field that is neither a column nor a property, and non-numeric comparisons', () => {
    expect(() => buildFilters([{ field: 'path; DROP TABLE x', operator: 'is', value: '1' }])).toThrow(FilterError);
    expect(() => buildFilters([{ field: 'path', operator: 'gt', value: 'abc' }])).toThrow(/expected a number/);
    expect(() => buildFilters([{ field: 'path', operator: 'is' }])).toThrow(/a value is required/);
  });

  it('is 1 without filters', () => {
    expect(buildFilters([])).toEqual({ sql: '1', params: {} });
  });
});

describe('parseWhere', () => {
  it('reads the operator forms, treating unknown keys as properties', () => {
    expect(parseWhere('country=DE')).toEqual({ field: 'country', operator: 'is', value: 'DE' });
    expect(parseWhere('plan!=free')).toEqual({ field: 'properties.plan', operator: 'isNot', value: 'free' });
    expect(parseWhere('path^=/docs')).toEqual({ field: 'path', operator: 'startsWith', value: '/docs' });
    expect(parseWhere('cart.total>10')).toEqual({ field: 'properties.cart.total', operator: 'gt', value: '10' });
    expect(parseWhere('coupon?')).toEqual({ field: 'properties.coupon', operator: 'exists' });
    expect(parseWhere("q='; DROP TABLE x")).toEqual({ field: 'properties.q', operator: 'is', value: "'; DROP TABLE x" });
  });

  it('rejects an expression without an operator', () => {
    expect(() => parseWhere('nonsense')).toThrow(/expected key=value/);
  });
});
