/**
 * `event-lens bench storage`: the optimised schema against a naive one, on
 * the same generated rows, measured in one run.
 *
 * naive_events: every column a String (properties as a JSON string, duration
 * as text), no codecs, ORDER BY tuple(). events: migration 0001's table, with
 * the dashboard views of migration 0003 filled by the same insert.
 *
 * Timings are medians of several runs with the query condition cache off
 * (with it on, repeated runs let the naive table skip almost every row).
 * Embedded chDB has no system.query_log, so peak memory is found by
 * bisecting max_memory_usage: the smallest limit under which the query
 * still succeeds (to within 5 %).
 */
import { Readable } from 'node:stream';
import { computeSessionRows, type RowFigures, type SessionEvent } from '../buffer/durations.js';
import { kindOf } from '../event/normalize.js';
import { queryRows, type ClickHouse } from '../clickhouse/client.js';
import { toDots } from '../event/dots.js';
import { formatDateTime } from '../event/normalize.js';
import type { GeneratedEvent } from '../generate/model.js';

export interface StorageBenchResult {
  events: number;
  bytes: { naive: number; optimised: number; views: number };
  columns: { column: string; naive: number; optimised: number }[];
  queries: { query: string; naiveMs: number; optimisedMs: number; viewMs: number | null }[];
  memory: { query: string; naiveBytes: number; optimisedBytes: number }[];
  timeOnPage: { windowFunctionMs: number; durationColumnMs: number; viewMs: number };
  storageRatio: number;
  propertyFilterTimeRatio: number;
  dashboardQueryTimeRatio: number;
  memoryRatio: number;
  timeOnPageRatio: number;
}

const TEXT = [
  'deviceId', 'profileId', 'path', 'origin', 'referrer', 'referrerName', 'referrerType', 'utmSource', 'utmMedium',
  'utmCampaign', 'utmTerm', 'utmContent', 'country', 'city', 'region', 'os', 'osVersion', 'browser', 'browserVersion',
  'device', 'brand', 'model', 'userAgent',
] as const;

const NAIVE_COLUMNS = ['id', 'projectId', 'name', 'sessionId', 'createdAt', 'timestamp', ...TEXT, 'latitude', 'longitude', 'properties', 'duration', 'screenViews', 'engagedMs', 'ip'];

/** The final ClickHouse rows of the events (durations and engaged times from the reference model), as the optimised and the naive table take them. */
export function rowsFor(events: readonly GeneratedEvent[], timeoutMs: number): { optimised: string[]; naive: string[] } {
  const bySession = new Map<string, SessionEvent[]>();
  for (const e of events) {
    const list = bySession.get(e.sessionId ?? '') ?? [];
    list.push({ id: e.id, createdAtMs: Date.parse(e.createdAt), kind: kindOf(e.name) });
    bySession.set(e.sessionId ?? '', list);
  }
  const figures = new Map<string, RowFigures>();
  for (const list of bySession.values()) for (const [id, f] of computeSessionRows(list, timeoutMs)) figures.set(id, f);
  const optimised: string[] = [];
  const naive: string[] = [];
  for (const e of events) {
    const f = figures.get(e.id) ?? { duration: null, screenViews: 0, engaged: null };
    const createdAt = formatDateTime(Date.parse(e.createdAt));
    const base: Record<string, unknown> = { id: e.id, projectId: e.projectId, name: e.name, sessionId: e.sessionId ?? '', createdAt, timestamp: createdAt };
    for (const c of TEXT) if (e[c] !== undefined) base[c] = e[c];
    optimised.push(JSON.stringify({ ...base, latitude: e.latitude ?? null, longitude: e.longitude ?? null, properties: toDots(e.properties ?? {}), duration: f.duration, screenViews: f.screenViews, engagedMs: f.engaged }));
    const text: Record<string, string> = {};
    for (const [k, v] of Object.entries(base)) text[k] = String(v);
    naive.push(
      JSON.stringify({
        ...text,
        latitude: e.latitude === undefined ? '' : String(e.latitude),
        longitude: e.longitude === undefined ? '' : String(e.longitude),
        properties: JSON.stringify(e.properties ?? {}),
        duration: f.duration === null ? '' : String(f.duration),
        screenViews: String(f.screenViews),
        engagedMs: f.engaged === null ? '' : String(f.engaged),
      }),
    );
  }
  return { optimised, naive };
}

async function insert(ch: ClickHouse, table: string, rows: readonly string[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 100_000) {
    const r = await ch.client.exec({
      query: `INSERT INTO ${ch.database}.${table} FORMAT JSONEachRow`,
      values: Readable.from([Buffer.from(rows.slice(i, i + 100_000).join('\n'))], { objectMode: false }),
    });
    r.stream.resume();
  }
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
};

async function timeQuery(ch: ClickHouse, sql: string, runs: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= runs; i += 1) {
    const started = performance.now();
    const rs = await ch.client.query({ query: sql, format: 'JSONEachRow', clickhouse_settings: { use_query_condition_cache: 0 } });
    await rs.json();
    if (i > 0) times.push(performance.now() - started); // the first run warms caches
  }
  return median(times);
}

/** The smallest max_memory_usage (bytes, ±5 %) under which the query succeeds. */
async function peakMemory(ch: ClickHouse, sql: string): Promise<number> {
  const ok = async (limit: number): Promise<boolean> => {
    try {
      const rs = await ch.client.query({ query: sql, format: 'JSONEachRow', clickhouse_settings: { max_memory_usage: String(Math.round(limit)), use_query_condition_cache: 0 } });
      await rs.json();
      return true;
    } catch (err) {
      if (/MEMORY_LIMIT_EXCEEDED|memory limit/i.test((err as Error).message)) return false;
      throw err;
    }
  };
  let lo = 64 * 1024;
  let hi = 8 * 1024 ** 3;
  if (await ok(lo)) return lo;
  while (hi / lo > 1.05) {
    const mid = Math.sqrt(lo * hi);
    if (await ok(mid)) hi = mid;
    else lo = mid;
  }
  return Math.round(hi);
}

async function tableBytes(ch: ClickHouse, tables: readonly string[]): Promise<number> {
  const [row] = await queryRows<{ b: string | number }>(
    ch,
    'SELECT sum(bytes_on_disk) AS b FROM system.parts WHERE database = {db:String} AND table IN {t:Array(String)} AND active',
    { db: ch.database, t: tables },
  );
  return Number(row?.b ?? 0);
}

export async function benchStorage(
  ch: ClickHouse,
  events: readonly GeneratedEvent[],
  options: { runs: number; timeoutMs: number; onStep?: (step: string) => void },
): Promise<StorageBenchResult> {
  const db = ch.database;
  const step = options.onStep ?? (() => {});
  step('rows');
  const { optimised, naive } = rowsFor(events, options.timeoutMs);
  await ch.client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.naive_events (${NAIVE_COLUMNS.map((c) => `${c} String`).join(', ')}) ENGINE = MergeTree ORDER BY tuple()`,
  });
  step('insert naive');
  await insert(ch, 'naive_events', naive);
  step('insert optimised');
  await insert(ch, 'events', optimised);
  step('merge');
  const viewTables = ['daily_metrics', 'pages_daily', 'referrers_daily', 'geo_daily', 'devices_daily', 'event_names_daily', 'sessions_daily'];
  for (const t of ['naive_events', 'events', ...viewTables]) await ch.client.command({ query: `OPTIMIZE TABLE ${db}.${t} FINAL` });

  const bytes = { naive: await tableBytes(ch, ['naive_events']), optimised: await tableBytes(ch, ['events']), views: await tableBytes(ch, viewTables) };
  const columns = await queryRows<{ column: string; naive: string | number; optimised: string | number }>(
    ch,
    `SELECT name AS column, sumIf(data_compressed_bytes, table = 'naive_events') AS naive, sumIf(data_compressed_bytes, table = 'events') AS optimised
       FROM system.columns WHERE database = {db:String} AND table IN ('naive_events', 'events') GROUP BY name ORDER BY naive DESC`,
    { db },
  );

  const [sample] = await queryRows<{ sessionId: string }>(ch, `SELECT sessionId FROM ${db}.events WHERE name = 'session_end' LIMIT 1`);
  const session = (sample?.sessionId ?? '').replace(/'/g, "''");
  const naiveDay = 'toDate(parseDateTime64BestEffort(createdAt))';
  const q = {
    daily: {
      naive: `SELECT ${naiveDay} AS day, count(), uniq(deviceId), uniq(sessionId), countIf(name = 'screen_view') FROM ${db}.naive_events WHERE projectId = 'acme-shop' GROUP BY day ORDER BY day`,
      optimised: `SELECT toDate(createdAt) AS day, count(), uniq(deviceId), uniq(sessionId), countIf(name = 'screen_view') FROM ${db}.events WHERE projectId = 'acme-shop' GROUP BY day ORDER BY day`,
      view: `SELECT day, sum(events), uniqMerge(devices), uniqMerge(sessions), sum(screenViews) FROM ${db}.daily_metrics WHERE projectId = 'acme-shop' GROUP BY day ORDER BY day`,
    },
    pages: {
      naive: `SELECT path, count() AS views, avg(toUInt64OrNull(duration)) FROM ${db}.naive_events WHERE projectId = 'acme-shop' AND name = 'screen_view' GROUP BY path ORDER BY views DESC LIMIT 20`,
      optimised: `SELECT path, count() AS views, avg(duration) FROM ${db}.events WHERE projectId = 'acme-shop' AND name = 'screen_view' GROUP BY path ORDER BY views DESC LIMIT 20`,
      view: `SELECT path, sum(views) AS v, sum(durationSum) / nullIf(sum(durationCount), 0) FROM ${db}.pages_daily WHERE projectId = 'acme-shop' GROUP BY path ORDER BY v DESC LIMIT 20`,
    },
    property: {
      naive: `SELECT count() FROM ${db}.naive_events WHERE JSONExtractString(properties, 'plan') = 'pro'`,
      optimised: `SELECT count() FROM ${db}.events WHERE properties['plan'] = 'pro'`,
    },
    path: {
      naive: `SELECT count() FROM ${db}.naive_events WHERE path = '/checkout'`,
      optimised: `SELECT count() FROM ${db}.events WHERE path = '/checkout'`,
    },
    session: {
      naive: `SELECT * FROM ${db}.naive_events WHERE sessionId = '${session}' ORDER BY createdAt`,
      optimised: `SELECT * FROM ${db}.events WHERE sessionId = '${session}' ORDER BY createdAt`,
    },
  };
  const queries: StorageBenchResult['queries'] = [];
  for (const [name, sql] of Object.entries(q)) {
    step(`query ${name}`);
    queries.push({
      query: name,
      naiveMs: await timeQuery(ch, sql.naive, options.runs),
      optimisedMs: await timeQuery(ch, sql.optimised, options.runs),
      viewMs: 'view' in sql ? await timeQuery(ch, sql.view, options.runs) : null,
    });
  }
  const memory: StorageBenchResult['memory'] = [];
  for (const name of ['daily', 'pages', 'path'] as const) {
    step(`memory ${name}`);
    memory.push({ query: name, naiveBytes: await peakMemory(ch, q[name].naive), optimisedBytes: await peakMemory(ch, q[name].optimised) });
  }

  step('time on page');
  const windowSql = `SELECT path, avg(next - t) AS avgMs FROM (
      SELECT path, toUnixTimestamp64Milli(parseDateTime64BestEffort(createdAt)) AS t,
             leadInFrame(toUnixTimestamp64Milli(parseDateTime64BestEffort(createdAt))) OVER (PARTITION BY sessionId ORDER BY createdAt ROWS BETWEEN CURRENT ROW AND 1 FOLLOWING) AS next
        FROM ${db}.naive_events WHERE projectId = 'acme-shop' AND name = 'screen_view')
    WHERE next > t GROUP BY path ORDER BY count() DESC LIMIT 20`;
  const timeOnPage = {
    windowFunctionMs: await timeQuery(ch, windowSql, options.runs),
    durationColumnMs: queries.find((x) => x.query === 'pages')?.optimisedMs ?? 0,
    viewMs: queries.find((x) => x.query === 'pages')?.viewMs ?? 0,
  };

  const find = (name: string) => queries.find((x) => x.query === name) as StorageBenchResult['queries'][number];
  const dashboards = ['daily', 'pages'].map(find);
  const round = (x: number): number => Number(x.toFixed(3));
  return {
    events: events.length,
    bytes,
    columns: columns.map((c) => ({ column: c.column, naive: Number(c.naive), optimised: Number(c.optimised) })),
    queries,
    memory,
    timeOnPage,
    storageRatio: round(bytes.optimised / bytes.naive),
    propertyFilterTimeRatio: round(find('property').optimisedMs / find('property').naiveMs),
    dashboardQueryTimeRatio: round(dashboards.reduce((s, d) => s + (d.viewMs ?? 0), 0) / dashboards.reduce((s, d) => s + d.naiveMs, 0)),
    memoryRatio: round(memory.reduce((s, m) => s + m.optimisedBytes, 0) / memory.reduce((s, m) => s + m.naiveBytes, 0)),
    timeOnPageRatio: round(timeOnPage.viewMs / timeOnPage.windowFunctionMs),
  };
}
