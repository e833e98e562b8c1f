/**
 * `toDots` flattens nested properties into the `Map(String, String)` form that
 * ClickHouse stores; `fromDots` rebuilds objects from it.
 *
 * Rules (DESIGN §1): nested objects and arrays become dotted keys (`a.b`,
 * `list.0`); numbers and booleans become their string form; `null` and
 * `undefined` are dropped; strings are kept exactly as given (a string that
 * looks like JSON stays a string). A key that already contains a dot is kept
 * as it is, so `{"a.b": 1}` and `{"a": {"b": 1}}` flatten to the same key;
 * when one object produces the same flattened key twice, `toDots` rejects it
 * rather than silently keeping one value. `fromDots` splits on every dot, so
 * it returns `{"a": {"b": "1"}}` for both. A key or string value holding NUL
 * is rejected, as NUL is in every other field of an event (ClickHouse keeps
 * it, but most tools that read the values end a string at it).
 *
 * Output objects have no prototype, so keys such as `__proto__` and
 * `constructor` are plain data and can never write to Object.prototype.
 */
import { EventLensError } from '../errors.js';
import { isWellFormed, LIMITS } from './limits.js';

/** Flattened properties: a prototype-free record of string values. */
export type DottedProperties = Record<string, string>;

/** Thrown by toDots with the dotted path of the offending property. */
export class DotsError extends EventLensError {
  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super('PROPERTY_INVALID', `${field}: ${rule}`);
  }
}

export interface DotsLimits {
  maxProperties: number;
  maxPropertyDepth: number;
  maxPropertyKeyLength: number;
  maxPropertyValueLength: number;
}

/** A key as an error message can show it: escaped as in JSON, at most 64 characters. */
const printable = (key: string): string => JSON.stringify(key.slice(0, 64)).slice(1, -1);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Flattens `input` (a plain object) into dotted keys. `field` names the object
 * in error messages. Throws DotsError naming the path and the broken limit.
 */
export function toDots(input: unknown, field = 'properties', limits: DotsLimits = LIMITS): DottedProperties {
  if (!isPlainObject(input)) throw new DotsError(field, 'must be a JSON object');
  const out: DottedProperties = Object.create(null) as DottedProperties;
  let count = 0;

  const put = (key: string, value: string): void => {
    if (key.length > limits.maxPropertyKeyLength) {
      throw new DotsError(`${field}.${key.slice(0, 64)}…`, `key must be at most ${limits.maxPropertyKeyLength} characters`);
    }
    if (value.length > limits.maxPropertyValueLength) {
      throw new DotsError(`${field}.${key}`, `value must be at most ${limits.maxPropertyValueLength} characters`);
    }
    if (!isWellFormed(key) || !isWellFormed(value)) {
      throw new DotsError(`${field}.${printable(key)}`, 'key and value must be valid Unicode (a lone surrogate was found)');
    }
    if (key.includes('\u0000') || value.includes('\u0000')) throw new DotsError(`${field}.${printable(key)}`, 'must not contain NUL characters (in its key or value)');
    if (Object.prototype.hasOwnProperty.call(out, key)) {
      throw new DotsError(`${field}.${key}`, 'key appears twice after flattening (a dotted key collides with a nested one)');
    }
    count += 1;
    if (count > limits.maxProperties) {
      throw new DotsError(field, `must have at most ${limits.maxProperties} properties after flattening`);
    }
    out[key] = value;
  };

  const walk = (value: unknown, key: string, depth: number): void => {
    if (value === null || value === undefined) return;
    switch (typeof value) {
      case 'string':
        put(key, value);
        return;
      case 'number':
        if (!Number.isFinite(value)) throw new DotsError(`${field}.${key}`, 'number must be finite');
        put(key, String(value));
        return;
      case 'boolean':
        put(key, value ? 'true' : 'false');
        return;
      case 'object': {
        if (depth >= limits.maxPropertyDepth) {
          throw new DotsError(`${field}.${key}`, `nesting must be at most ${limits.maxPropertyDepth} levels deep`);
        }
        if (Array.isArray(value)) {
          value.forEach((item, i) => walk(item, `${key}.${i}`, depth + 1));
          return;
        }
        if (!isPlainObject(value)) throw new DotsError(`${field}.${key}`, 'must be JSON data');
        for (const [k, v] of Object.entries(value)) walk(v, `${key}.${k}`, depth + 1);
        return;
      }
      default:
        throw new DotsError(`${field}.${key}`, `must be JSON data (got ${typeof value})`);
    }
  };

  for (const [k, v] of Object.entries(input)) walk(v, k, 0);
  return out;
}

/** Rebuilds nested objects from dotted keys (arrays come back as objects keyed "0", "1", …). */
export function fromDots(dotted: Readonly<Record<string, string>>): Record<string, unknown> {
  const root: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [key, value] of Object.entries(dotted)) {
    const parts = key.split('.');
    let node = root;
    for (let i = 0; i < parts.length - 1; i += 1) {
      const part = parts[i] as string;
      const next = Object.prototype.hasOwnProperty.call(node, part) ? node[part] : undefined;
      if (next !== null && typeof next === 'object') {
        node = next as Record<string, unknown>;
      } else {
        // A leaf already at this path (e.g. "a" and "a.b" both present) is kept under "" so no value is lost.
        const child = Object.create(null) as Record<string, unknown>;
        if (typeof next === 'string') child[''] = next;
        node[part] = child;
        node = child;
      }
    }
    const leaf = parts[parts.length - 1] as string;
    const existing = Object.prototype.hasOwnProperty.call(node, leaf) ? node[leaf] : undefined;
    if (existing !== null && typeof existing === 'object') (existing as Record<string, unknown>)[''] = value;
    else node[leaf] = value;
  }
  return root;
}
