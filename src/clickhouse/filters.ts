/**
 * Safe filters for events queries. A filter names a column or a property
 * (`properties.<key>`), an operator and a value; `buildFilters` returns a SQL
 * condition that refers to them only through query parameters
 * (`{f0_v:String}`), never by pasting user text into SQL. Column names are
 * checked against the events columns; property keys are parameters too, so
 * any key (quotes, backslashes, braces, NUL, very long) is just data.
 */
import { EventLensError } from '../errors.js';

export const FILTER_OPERATORS = ['is', 'isNot', 'contains', 'startsWith', 'regex', 'gt', 'lt', 'exists'] as const;
export type FilterOperator = (typeof FILTER_OPERATORS)[number];

export interface Filter {
  /** An events column (`path`, `country`, …) or `properties.<key>`. */
  field: string;
  operator: FilterOperator;
  /** Required for every operator but `exists`. */
  value?: string | number;
}

export interface BuiltFilter {
  /** `1` when there are no filters, so it can always follow WHERE … AND. */
  sql: string;
  params: Record<string, string | number>;
}

/** String columns of the events table that filters may use. */
export const FILTER_COLUMNS = new Set([
  'id', 'projectId', 'name', 'deviceId', 'profileId', 'sessionId', 'country', 'city', 'region', 'os', 'osVersion',
  'browser', 'browserVersion', 'device', 'brand', 'model', 'path', 'origin', 'referrer', 'referrerName', 'referrerType',
  'utmSource', 'utmMedium', 'utmCampaign', 'utmTerm', 'utmContent',
]);

/** A filter that cannot be built, with what was wrong. */
export class FilterError extends EventLensError {
  constructor(message: string) {
    super('FILTER_INVALID', message);
  }
}

export function buildFilters(filters: readonly Filter[], paramPrefix = 'f'): BuiltFilter {
  const parts: string[] = [];
  const params: Record<string, string | number> = {};
  filters.forEach((filter, i) => {
    const p = `${paramPrefix}${i}`;
    let subject: string;
    let exists: string;
    if (filter.field.startsWith('properties.')) {
      params[`${p}_k`] = filter.field.slice('properties.'.length);
      subject = `properties[{${p}_k:String}]`;
      exists = `mapContains(properties, {${p}_k:String})`;
    } else if (FILTER_COLUMNS.has(filter.field)) {
      // an allow-listed identifier, never user text; country is FixedString(2): compare as String
      subject = filter.field === 'country' ? `toString(trimRight(country, '\\0'))` : filter.field;
      exists = `${subject} != ''`;
    } else {
      throw new FilterError(`filter field ${JSON.stringify(filter.field.slice(0, 80))}: expected an events column or properties.<key>`);
    }
    if (filter.operator === 'exists') {
      parts.push(exists);
      return;
    }
    if (filter.value === undefined) throw new FilterError(`filter ${filter.field} ${filter.operator}: a value is required`);
    const value = `${p}_v`;
    switch (filter.operator) {
      case 'is':
        params[value] = String(filter.value);
        parts.push(`${subject} = {${value}:String}`);
        return;
      case 'isNot':
        params[value] = String(filter.value);
        parts.push(`${subject} != {${value}:String}`);
        return;
      case 'contains':
        params[value] = String(filter.value);
        parts.push(`position(${subject}, {${value}:String}) > 0`);
        return;
      case 'startsWith':
        params[value] = String(filter.value);
        parts.push(`startsWith(${subject}, {${value}:String})`);
        return;
      case 'regex':
        params[value] = String(filter.value);
        parts.push(`match(${subject}, {${value}:String})`);
        return;
      case 'gt':
      case 'lt': {
        const n = Number(filter.value);
        if (!Number.isFinite(n)) throw new FilterError(`filter ${filter.field} ${filter.operator}: expected a number, got ${JSON.stringify(String(filter.value).slice(0, 40))}`);
        params[value] = n;
        parts.push(`toFloat64OrNull(${subject}) ${filter.operator === 'gt' ? '>' : '<'} {${value}:Float64}`);
        return;
      }
      default: {
        const never: never = filter.operator;
        throw new FilterError(`unknown filter operator ${String(never)}`);
      }
    }
  });
  return { sql: parts.length > 0 ? parts.map((x) => `(${x})`).join(' AND ') : '1', params };
}

/** Parses `key=value` (is), `key!=value`, `key~=regex`, `key^=prefix`, `key*=text`, `key>n`, `key<n`, `key?` (exists). Bare keys that are not columns are properties. */
export function parseWhere(expression: string): Filter {
  const m = /^([^=!~^*<>?]+?)(!=|~=|\^=|\*=|=|>|<|\?)(.*)$/s.exec(expression);
  if (!m) throw new FilterError(`--where ${JSON.stringify(expression.slice(0, 80))}: expected key=value, key!=value, key~=regex, key^=prefix, key*=text, key>n, key<n or key?`);
  const [, rawKey = '', op = '', value = ''] = m;
  const field = FILTER_COLUMNS.has(rawKey) || rawKey.startsWith('properties.') ? rawKey : `properties.${rawKey}`;
  const operator: FilterOperator = ({ '=': 'is', '!=': 'isNot', '~=': 'regex', '^=': 'startsWith', '*=': 'contains', '>': 'gt', '<': 'lt', '?': 'exists' } as const)[
    op as '=' | '!=' | '~=' | '^=' | '*=' | '>' | '<' | '?'
  ];
  return operator === 'exists' ? { field, operator } : { field, operator, value };
}
