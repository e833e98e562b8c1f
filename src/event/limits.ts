/**
 * Documented input limits (README "Input limits"). They bound the memory and
 * Redis space one event can take, so one bad producer cannot hurt the rest.
 */
export const LIMITS = {
  /** Largest serialized event (an NDJSON line or a job's event), in bytes. */
  maxEventBytes: 64 * 1024,
  /** Most properties an event may carry after flattening with toDots. */
  maxProperties: 512,
  /** Deepest nesting of `properties` (an object directly under properties is depth 1). */
  maxPropertyDepth: 8,
  /** Longest flattened property key, in characters. */
  maxPropertyKeyLength: 256,
  /** Longest property value, in characters. */
  maxPropertyValueLength: 8 * 1024,
  /** Longest free-text field (path, referrer, userAgent, ...), in characters. */
  maxTextLength: 4 * 1024,
} as const;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/** False for a string with a lone UTF-16 surrogate (what invalid UTF-8 becomes in JSON escapes): it cannot be stored as UTF-8 unchanged. */
export const isWellFormed = (s: string): boolean => !LONE_SURROGATE.test(s);
