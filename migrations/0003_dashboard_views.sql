-- 0003: materialized views for the dashboard. Each keeps one row per project,
-- day and dimension in an AggregatingMergeTree, filled as rows are inserted,
-- so a dashboard reads thousands of pre-aggregated rows instead of scanning
-- events. Query them with the -Merge combinators (uniqMerge) and sum().
-- Time on page is exact because `duration` is settled before insert: the
-- pages view sums durations and counts the known ones (NULL = unknown is
-- left out, so the average stays honest).

-- Serves: daily metrics per project (events, unique devices, sessions, screen views).
--   SELECT day, sum(events), uniqMerge(devices), uniqMerge(sessions), sum(screenViews)
--   FROM daily_metrics WHERE projectId = {p:String} AND day BETWEEN {from:Date} AND {to:Date} GROUP BY day ORDER BY day
CREATE TABLE IF NOT EXISTS {{database}}.daily_metrics {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    events SimpleAggregateFunction(sum, UInt64),
    screenViews SimpleAggregateFunction(sum, UInt64),
    devices AggregateFunction(uniq, String),
    sessions AggregateFunction(uniq, String)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.daily_metrics_mv {{on_cluster}} TO {{database}}.daily_metrics AS
SELECT projectId, toDate(createdAt) AS day, count() AS events, countIf(name = 'screen_view') AS screenViews,
       uniqState(deviceId) AS devices, uniqStateIf(sessionId, sessionId != '') AS sessions
FROM {{database}}.events GROUP BY projectId, day;

-- Serves: top pages with views and average time on page.
--   SELECT path, sum(views), sum(durationSum) / nullIf(sum(durationCount), 0) AS avgMs
--   FROM pages_daily WHERE projectId = {p:String} AND day BETWEEN … GROUP BY path ORDER BY sum(views) DESC LIMIT 20
CREATE TABLE IF NOT EXISTS {{database}}.pages_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    origin LowCardinality(String),
    path LowCardinality(String),
    views SimpleAggregateFunction(sum, UInt64),
    durationSum SimpleAggregateFunction(sum, UInt64),
    durationCount SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, origin, path);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.pages_daily_mv {{on_cluster}} TO {{database}}.pages_daily AS
SELECT projectId, toDate(createdAt) AS day, origin, path, count() AS views,
       sum(ifNull(duration, 0)) AS durationSum, count(duration) AS durationCount
FROM {{database}}.events WHERE name = 'screen_view' GROUP BY projectId, day, origin, path;

-- Serves: referrers and UTM campaigns by sessions (from the sessions table: one first referrer per session).
--   SELECT referrerName, utmSource, utmCampaign, uniqMerge(sessions), uniqMerge(bounces)
--   FROM referrers_daily WHERE projectId = … AND day BETWEEN … GROUP BY referrerName, utmSource, utmCampaign
CREATE TABLE IF NOT EXISTS {{database}}.referrers_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    referrerName LowCardinality(String),
    referrerType LowCardinality(String),
    utmSource LowCardinality(String),
    utmMedium LowCardinality(String),
    utmCampaign LowCardinality(String),
    sessions AggregateFunction(uniq, String),
    bounces AggregateFunction(uniq, String)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, referrerName, referrerType, utmSource, utmMedium, utmCampaign);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.referrers_daily_mv {{on_cluster}} TO {{database}}.referrers_daily AS
SELECT projectId, toDate(start) AS day, referrerName, referrerType, utmSource, utmMedium, utmCampaign,
       uniqState(id) AS sessions, uniqStateIf(id, isBounce = 1) AS bounces
FROM {{database}}.sessions GROUP BY projectId, day, referrerName, referrerType, utmSource, utmMedium, utmCampaign;

-- Serves: geography (events and devices by country, region, city).
--   SELECT country, sum(events), uniqMerge(devices) FROM geo_daily WHERE projectId = … AND day BETWEEN … GROUP BY country
CREATE TABLE IF NOT EXISTS {{database}}.geo_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    country FixedString(2),
    region LowCardinality(String),
    city LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    devices AggregateFunction(uniq, String)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, country, region, city);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.geo_daily_mv {{on_cluster}} TO {{database}}.geo_daily AS
SELECT projectId, toDate(createdAt) AS day, country, region, city, count() AS events, uniqState(deviceId) AS devices
FROM {{database}}.events GROUP BY projectId, day, country, region, city;

-- Serves: devices, operating systems and browsers.
--   SELECT browser, sum(events), uniqMerge(devices) FROM devices_daily WHERE projectId = … GROUP BY browser
CREATE TABLE IF NOT EXISTS {{database}}.devices_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    device LowCardinality(String),
    os LowCardinality(String),
    browser LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    devices AggregateFunction(uniq, String)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, device, os, browser);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.devices_daily_mv {{on_cluster}} TO {{database}}.devices_daily AS
SELECT projectId, toDate(createdAt) AS day, device, os, browser, count() AS events, uniqState(deviceId) AS devices
FROM {{database}}.events GROUP BY projectId, day, device, os, browser;

-- Serves: event names (custom events report).
--   SELECT name, sum(events), uniqMerge(devices) FROM event_names_daily WHERE projectId = … GROUP BY name
CREATE TABLE IF NOT EXISTS {{database}}.event_names_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    name LowCardinality(String),
    events SimpleAggregateFunction(sum, UInt64),
    devices AggregateFunction(uniq, String)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, name);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.event_names_daily_mv {{on_cluster}} TO {{database}}.event_names_daily AS
SELECT projectId, toDate(createdAt) AS day, name, count() AS events, uniqState(deviceId) AS devices
FROM {{database}}.events GROUP BY projectId, day, name;

-- Serves: sessions per day with bounce rate and average session length.
--   SELECT day, uniqMerge(sessions), uniqMerge(bounces) / uniqMerge(sessions), sum(durationSum) / sum(finalisations)
--   FROM sessions_daily WHERE projectId = … GROUP BY day
-- (A session finalised again after late events is counted once by uniq; its
-- duration enters the sums once per finalisation, which the ratio accounts for.)
CREATE TABLE IF NOT EXISTS {{database}}.sessions_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    sessions AggregateFunction(uniq, String),
    bounces AggregateFunction(uniq, String),
    finalisations SimpleAggregateFunction(sum, UInt64),
    durationSum SimpleAggregateFunction(sum, UInt64),
    screenViews SimpleAggregateFunction(sum, UInt64)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.sessions_daily_mv {{on_cluster}} TO {{database}}.sessions_daily AS
SELECT projectId, toDate(start) AS day, uniqState(id) AS sessions, uniqStateIf(id, isBounce = 1) AS bounces,
       count() AS finalisations, sum(duration) AS durationSum, sum(screenViews) AS screenViews
FROM {{database}}.sessions GROUP BY projectId, day;
