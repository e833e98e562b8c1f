/**
 * chdb's adapter applies per-call settings with SET on one long-lived session,
 * so a setting given to one call would leak into every later call. Every call
 * on the embedded engine therefore restates, at the engine's default, each
 * setting Event Lens ever passes per call. Above all insert_deduplication_token:
 * otherwise a later insert without a token would be dropped as a duplicate of
 * the last flushed batch. Add a setting here when code starts passing it.
 */
export const EMBEDDED_SETTING_DEFAULTS = {
  insert_deduplication_token: '',
  max_memory_usage: '0',
  use_query_condition_cache: 1,
  input_format_skip_unknown_fields: 1,
} as const;
