/**
 * Configuration: the only module that reads environment variables, and only
 * through `loadConfig(env)`, which is pure (pass `process.env` at the edge).
 * Every problem is collected and reported in one `ConfigError`; messages name
 * the variable, the value (secrets redacted) and the expected form.
 */
import { parseProxyTrust, type ProxyTrust } from './intake/proxy.js';
import path from 'node:path';
import { ConfigError } from './errors.js';

export interface Config {
  /** Redis connection URL; `rediss://` for TLS, user and password in the URL. @defaultValue `redis://127.0.0.1:6379` */
  redisUrl: string;
  /** REDIS_URL names one node of a Redis Cluster; the others are discovered. @defaultValue false */
  redisCluster: boolean;
  /** ClickHouse server URL; `undefined` selects the embedded chDB engine. @defaultValue unset */
  clickhouseUrl: string | undefined;
  /** Directory of the embedded ClickHouse data. @defaultValue `./.event-lens` */
  dataDir: string;
  /** ClickHouse database. @defaultValue `event_lens` */
  clickhouseDatabase: string;
  /** ClickHouse cluster: migrations run ON CLUSTER with Replicated engines. @defaultValue unset */
  clickhouseCluster: string | undefined;
  /** Number of buffer shards; fixed per deployment (changing it strands held sessions). @defaultValue 16 */
  bufferShards: number;
  /** Prefix of every Redis key the buffer owns. @defaultValue `el` */
  keyPrefix: string;
  /** Time a settled row is held before it is emitted, on the buffer clock. @defaultValue 10 000 */
  graceMs: number;
  /** Inactivity after which a session is finalised; also the longest gap inside a duration. @defaultValue 1 800 000 */
  sessionTimeoutMs: number;
  /** How long a finalised session's ids are remembered to drop retried duplicates. @defaultValue = sessionTimeoutMs */
  dedupWindowMs: number;
  /** Safety TTL on a held session's keys, refreshed on every change; bounds leaks if no worker runs. @defaultValue 86 400 000 */
  bufferTtlMs: number;
  /** Largest batch inserted into ClickHouse, in rows. @defaultValue 10 000 */
  flushMaxRows: number;
  /** Largest batch inserted into ClickHouse, in bytes of JSON rows. @defaultValue 16 777 216 */
  flushMaxBytes: number;
  /** Shortest interval between two inserts of a shard's partial batch. @defaultValue 1 000 */
  flushIntervalMs: number;
  /** How far in the future `createdAt` may be before it is clamped to the receive time. @defaultValue 3 600 000 */
  maxFutureMs: number;
  /** Retention of the events table (TTL), in days; 0 keeps rows forever. @defaultValue 0 */
  retentionDays: number;
  /** Port of the Prometheus `/metrics` and health endpoints; 0 disables them. @defaultValue 9464 */
  metricsPort: number;
  /** pino log level. @defaultValue `info` */
  logLevel: string;
  /** BullMQ queue the ingestion API writes to. @defaultValue `events` */
  queueName: string;
  /** BullMQ key prefix; hash-tag it (`{el}`) on Redis Cluster. @defaultValue `bull` */
  queuePrefix: string;
  /** Jobs one worker process handles at once. @defaultValue 8 */
  workerConcurrency: number;
  /** Times a job may be retaken from a dead worker before it fails (BullMQ's maxStalledCount). @defaultValue 10 */
  workerMaxStalled: number;
  /** Ready rows (all shards) above which workers stop taking jobs. @defaultValue 200 000 */
  backlogHighWatermark: number;
  /** Ready rows below which paused workers take jobs again. @defaultValue 100 000 */
  backlogLowWatermark: number;
  /** How long a flusher's shard lease lives without renewal. @defaultValue 15 000 */
  leaseMs: number;
  /** Interval of the sweeper (emit due rows, finalise sessions) and of the backlog check. @defaultValue 250 */
  sweepIntervalMs: number;
  /**
   * Longest time the sweep clock stays behind the wall clock while jobs wait in
   * the queue (see WorkerService.sweepClock): past it, rows are written even if
   * a waiting event could still change them (liveness: a full Redis frees
   * memory only by emitting). @defaultValue 60 000
   */
  sweepHoldMaxMs: number;
  /** Deadline of the final flush on SIGTERM. @defaultValue 30 000 */
  shutdownTimeoutMs: number;
  /** BullMQ job lock: a job of a killed worker is retried after about 1.5 × this; keep that below graceMs. @defaultValue 5 000 */
  workerLockMs: number;
  /** Longest wait of one producer enqueue (the ingestion server's and `replay --enqueue`'s) before it fails. @defaultValue 5 000 */
  enqueueTimeoutMs: number;
  /** Port of `event-lens serve` (its /metrics, /healthz and /readyz too). @defaultValue 3 000 */
  port: number;
  /** JSON file of the projects `serve` accepts (client ids, secrets, origins). @defaultValue unset */
  projectsFile: string | undefined;
  /** `serve` is behind a trusted proxy: client IP from X-Forwarded-For / x-client-ip, geo from its headers. @defaultValue false */
  /**
   * The proxies in front of `serve` whose X-Forwarded-For is believed: a hop
   * count (`TRUST_PROXY=1`: the one proxy that connects to the server; `true`
   * means 1) or addresses and CIDR ranges (`10.0.0.0/8,127.0.0.1`); 0 or
   * `false` believes none. @defaultValue 0
   */
  trustProxy: ProxyTrust;
  /** MaxMind `.mmdb` city or country database for geo from the client IP. @defaultValue unset */
  geoipDb: string | undefined;
  /** `serve` coalesces requests into one batch job of at most this many events... @defaultValue 100 */
  intakeBatchMaxEvents: number;
  /** ...or what arrived within this window, whichever comes first. @defaultValue 5 */
  intakeBatchWindowMs: number;
  /** Largest request body `serve` reads, in bytes. @defaultValue 1 048 576 */
  intakeMaxBodyBytes: number;
  /** Most events in one `POST /v1/events` request. @defaultValue 1 000 */
  intakeMaxRequestEvents: number;
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Hides the password of a URL so it can appear in messages and logs. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparseable URL>';
  }
}

class Reader {
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  string(name: string, fallback: string, pattern?: RegExp, expected?: string): string {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    if (pattern && !pattern.test(raw)) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected ${expected ?? pattern.source}`);
      return fallback;
    }
    return raw;
  }

  bool(name: string, fallback: boolean): boolean {
    const raw = this.env[name]?.trim().toLowerCase();
    if (raw === undefined || raw === '') return fallback;
    if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
    if (['0', 'false', 'no', 'off'].includes(raw)) return false;
    this.problems.push(`${name}=${JSON.stringify(this.env[name])}: expected true or false (or 1 / 0)`);
    return fallback;
  }

  int(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    const value = Number(raw.replace(/_/g, ''));
    if (!Number.isSafeInteger(value) || value < min || value > max) {
      this.problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  proxyTrust(name: string): ProxyTrust {
    const raw = this.env[name]?.trim();
    if (raw === undefined || raw === '') return 0;
    const parsed = parseProxyTrust(raw);
    if (typeof parsed === 'string') {
      this.problems.push(`${name}=${JSON.stringify(raw)}: ${parsed}`);
      return 0;
    }
    return parsed;
  }

  url(name: string, fallback: string | undefined, protocols: readonly string[]): string | undefined {
    const raw = this.env[name];
    if (raw === undefined || raw === '') return fallback;
    let parsed: URL | undefined;
    try {
      parsed = new URL(raw);
    } catch {
      parsed = undefined;
    }
    if (!parsed || !protocols.includes(parsed.protocol)) {
      const shown = parsed ? redactUrl(raw) : '<unparseable URL>';
      this.problems.push(`${name}=${shown}: expected a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`);
      return fallback;
    }
    return raw;
  }
}

/** Reads and validates the configuration; throws one ConfigError listing every problem. */
export function loadConfig(env: Env, cwd = process.cwd()): Config {
  const r = new Reader(env);
  const sessionTimeoutMs = r.int('SESSION_TIMEOUT_MS', 1_800_000, 1_000);
  const graceMs = r.int('GRACE_MS', 10_000, 0, 3_600_000);
  const redisCluster = r.bool('REDIS_CLUSTER', false);
  const config: Config = {
    redisUrl: r.url('REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:']) ?? 'redis://127.0.0.1:6379',
    redisCluster,
    clickhouseUrl: r.url('CLICKHOUSE_URL', undefined, ['http:', 'https:']),
    dataDir: path.resolve(cwd, r.string('EVENT_LENS_DATA_DIR', './.event-lens')),
    clickhouseDatabase: r.string('CLICKHOUSE_DATABASE', 'event_lens', /^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'an identifier of letters, digits and _'),
    clickhouseCluster: r.string('CLICKHOUSE_CLUSTER', '', /^[A-Za-z0-9_.-]{1,128}$/, 'a cluster name of letters, digits, _ . -') || undefined,
    bufferShards: r.int('BUFFER_SHARDS', 16, 1, 1024),
    keyPrefix: r.string('BUFFER_KEY_PREFIX', 'el', /^[A-Za-z0-9_.-]{1,32}$/, '1..32 characters of letters, digits, _ . -'),
    graceMs,
    sessionTimeoutMs,
    dedupWindowMs: r.int('DEDUP_WINDOW_MS', sessionTimeoutMs, 0),
    bufferTtlMs: r.int('BUFFER_TTL_MS', 86_400_000, 1_000),
    flushMaxRows: r.int('FLUSH_MAX_ROWS', 10_000, 1, 1_000_000),
    flushMaxBytes: r.int('FLUSH_MAX_BYTES', 16 * 1024 * 1024, 1024),
    flushIntervalMs: r.int('FLUSH_INTERVAL_MS', 1_000, 0, 3_600_000),
    maxFutureMs: r.int('MAX_FUTURE_MS', 3_600_000, 0),
    retentionDays: r.int('RETENTION_DAYS', 0, 0, 36_500),
    metricsPort: r.int('METRICS_PORT', 9464, 0, 65_535),
    queueName: r.string('QUEUE_NAME', 'events', /^[A-Za-z0-9_.-]{1,64}$/, '1..64 characters of letters, digits, _ . -'),
    // on a cluster every key of a queue must share a slot: a {hash tag} in the prefix does that
    queuePrefix: r.string('QUEUE_PREFIX', redisCluster ? '{bull}' : 'bull', /^[A-Za-z0-9_.{}-]{1,32}$/, '1..32 characters of letters, digits, _ . - { }'),
    workerConcurrency: r.int('WORKER_CONCURRENCY', 8, 1, 1_000),
    workerMaxStalled: r.int('WORKER_MAX_STALLED', 10, 1, 1_000),
    backlogHighWatermark: r.int('BACKLOG_HIGH_WATERMARK', 200_000, 1),
    backlogLowWatermark: r.int('BACKLOG_LOW_WATERMARK', 100_000, 0),
    leaseMs: r.int('LEASE_MS', 15_000, 1_000, 600_000),
    sweepIntervalMs: r.int('SWEEP_INTERVAL_MS', 250, 10, 60_000),
    sweepHoldMaxMs: r.int('SWEEP_HOLD_MAX_MS', 60_000, 0, 86_400_000),
    shutdownTimeoutMs: r.int('SHUTDOWN_TIMEOUT_MS', 30_000, 0, 3_600_000),
    workerLockMs: r.int('WORKER_LOCK_MS', 5_000, 1_000, 600_000),
    enqueueTimeoutMs: r.int('ENQUEUE_TIMEOUT_MS', 5_000, 100, 600_000),
    port: r.int('PORT', 3_000, 0, 65_535),
    projectsFile: r.string('EVENT_LENS_PROJECTS', '') || undefined,
    trustProxy: r.proxyTrust('TRUST_PROXY'),
    geoipDb: r.string('GEOIP_DB', '') || undefined,
    intakeBatchMaxEvents: r.int('INTAKE_BATCH_MAX_EVENTS', 100, 1, 1_000),
    intakeBatchWindowMs: r.int('INTAKE_BATCH_WINDOW_MS', 5, 0, 10_000),
    intakeMaxBodyBytes: r.int('INTAKE_MAX_BODY_BYTES', 1_048_576, 1_024, 64 * 1_048_576),
    intakeMaxRequestEvents: r.int('INTAKE_MAX_REQUEST_EVENTS', 1_000, 1, 100_000),
    logLevel: r.string('LOG_LEVEL', 'info', new RegExp(`^(${LOG_LEVELS.join('|')})$`), `one of ${LOG_LEVELS.join(', ')}`),
  };
  if (config.bufferTtlMs < sessionTimeoutMs + graceMs) {
    r.problems.push(
      `BUFFER_TTL_MS=${config.bufferTtlMs}: expected at least SESSION_TIMEOUT_MS + GRACE_MS (${sessionTimeoutMs + graceMs}), or held sessions could expire before they are finalised`,
    );
  }
  if (config.redisCluster && !/\{[^{}]+\}/.test(config.queuePrefix)) {
    r.problems.push(`QUEUE_PREFIX=${JSON.stringify(config.queuePrefix)}: on a Redis Cluster it must contain a hash tag such as {bull}, so that each queue's keys share a slot`);
  }
  if (config.backlogLowWatermark >= config.backlogHighWatermark) {
    r.problems.push(
      `BACKLOG_LOW_WATERMARK=${config.backlogLowWatermark}: expected less than BACKLOG_HIGH_WATERMARK (${config.backlogHighWatermark})`,
    );
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** The settings the session buffer needs, taken from a Config. */
export type BufferSettings = Pick<
  Config,
  'bufferShards' | 'keyPrefix' | 'graceMs' | 'sessionTimeoutMs' | 'dedupWindowMs' | 'bufferTtlMs'
>;
