/**
 * Dashboard reports. Without filters they read the materialized views (a few
 * thousand pre-aggregated rows); with filters they run the same report on the
 * events table, filters built by buildFilters (parameters only).
 */
import { buildFilters, type Filter } from './filters.js';
import { queryRows, type ClickHouse } from './client.js';

export const REPORTS = ['pages', 'referrers', 'daily'] as const;
export type ReportName = (typeof REPORTS)[number];

export interface ReportOptions {
  projectId: string;
  /** Inclusive, YYYY-MM-DD. */
  from: string;
  /** Inclusive, YYYY-MM-DD. */
  to: string;
  where: readonly Filter[];
  limit: number;
}

export async function runReport(ch: ClickHouse, name: ReportName, o: ReportOptions): Promise<Record<string, unknown>[]> {
  const db = ch.database;
  const params = { p: o.projectId, from: o.from, to: o.to, limit: o.limit };
  const range = 'projectId = {p:String} AND day BETWEEN {from:Date} AND {to:Date}';
  const rawRange = 'projectId = {p:String} AND toDate(createdAt) BETWEEN {from:Date} AND {to:Date}';
  const filtered = o.where.length > 0;
  const f = buildFilters(o.where);
  const all = { ...params, ...f.params };
  switch (name) {
    case 'pages':
      // time on page (duration) and engaged time (E1) in seconds: average over the known ones, median of engaged time
      return filtered
        ? queryRows(
            ch,
            `SELECT path, count() AS views, round(avg(duration) / 1000, 1) AS avg_time_on_page_s,
                    round(avg(engagedMs) / 1000, 1) AS avg_engaged_s, round(quantileTDigest(0.5)(engagedMs) / 1000, 1) AS median_engaged_s
               FROM ${db}.events WHERE ${rawRange} AND name = 'screen_view' AND ${f.sql}
              GROUP BY path ORDER BY views DESC, path LIMIT {limit:UInt32}`,
            all,
          )
        : queryRows(
            ch,
            `SELECT path, views, avg_time_on_page_s, avg_engaged_s, median_engaged_s FROM
               (SELECT path, sum(views) AS views, round(sum(durationSum) / nullIf(sum(durationCount), 0) / 1000, 1) AS avg_time_on_page_s
                  FROM ${db}.pages_daily WHERE ${range} GROUP BY path) AS p
             LEFT JOIN
               (SELECT path, round(sum(engagedSum) / nullIf(sum(engagedCount), 0) / 1000, 1) AS avg_engaged_s,
                       round(quantileTDigestMerge(0.5)(engagedMedian) / 1000, 1) AS median_engaged_s
                  FROM ${db}.pages_engaged_daily WHERE ${range} GROUP BY path) AS e USING (path)
             ORDER BY views DESC, path LIMIT {limit:UInt32}
             SETTINGS join_use_nulls = 1`,
            params,
          );
    case 'referrers':
      return filtered
        ? queryRows(
            ch,
            `SELECT referrerName AS referrer, utmSource, utmCampaign, uniqExact(sessionId) AS sessions
               FROM ${db}.events WHERE ${rawRange} AND sessionId != '' AND ${f.sql}
              GROUP BY referrer, utmSource, utmCampaign ORDER BY sessions DESC, referrer LIMIT {limit:UInt32}`,
            all,
          )
        : queryRows(
            ch,
            `SELECT referrer, utmSource, utmCampaign, n AS sessions, round(b / n, 3) AS bounce_rate FROM
               (SELECT referrerName AS referrer, utmSource, utmCampaign, uniqMerge(sessions) AS n, uniqMerge(bounces) AS b
                  FROM ${db}.referrers_daily WHERE ${range} GROUP BY referrer, utmSource, utmCampaign)
              ORDER BY sessions DESC, referrer LIMIT {limit:UInt32}`,
            params,
          );
    case 'daily':
      return filtered
        ? queryRows(
            ch,
            `SELECT toDate(createdAt) AS day, count() AS events, uniq(deviceId) AS devices, uniqIf(sessionId, sessionId != '') AS sessions,
                    countIf(name = 'screen_view') AS screen_views
               FROM ${db}.events WHERE ${rawRange} AND ${f.sql} GROUP BY day ORDER BY day`,
            all,
          )
        : queryRows(
            ch,
            `SELECT day, events, devices, sessions, screen_views, bounce_rate FROM
               (SELECT day, sum(events) AS events, uniqMerge(devices) AS devices, uniqMerge(sessions) AS sessions, sum(screenViews) AS screen_views
                  FROM ${db}.daily_metrics WHERE ${range} GROUP BY day) AS d
             LEFT JOIN
               (SELECT day, round(uniqMerge(bounces) / uniqMerge(sessions), 3) AS bounce_rate
                  FROM ${db}.sessions_daily WHERE ${range} GROUP BY day) AS s USING (day)
             ORDER BY day`,
            params,
          );
    default: {
      const never: never = name;
      throw new Error(`unknown report ${String(never)}`);
    }
  }
}
