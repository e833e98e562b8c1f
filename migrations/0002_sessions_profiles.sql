-- 0002: sessions and profiles.
--
-- sessions: one row per finalised session, written by the worker through the
-- same exactly-once path as events (lua/sweep-4.lua builds it). A session that
-- is finalised again after late events writes a new row with a larger
-- `version`; ReplacingMergeTree keeps the latest (query with FINAL, or
-- argMax(…, version), for exact answers before merges). The sort key starts
-- with the project and includes the session id; `start` has a minmax index
-- for date ranges.
CREATE TABLE IF NOT EXISTS {{database}}.sessions {{on_cluster}}
(
    id String CODEC(ZSTD(1)),
    projectId LowCardinality(String),
    deviceId String CODEC(ZSTD(1)),
    profileId String CODEC(ZSTD(1)),
    start DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    end DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    duration UInt64 CODEC(T64, ZSTD(1)),
    screenViews UInt32 CODEC(T64, ZSTD(1)),
    eventCount UInt32 CODEC(T64, ZSTD(1)),
    entryPath LowCardinality(String),
    exitPath LowCardinality(String),
    isBounce UInt8,
    referrer String CODEC(ZSTD(1)),
    referrerName LowCardinality(String),
    referrerType LowCardinality(String),
    utmSource LowCardinality(String),
    utmMedium LowCardinality(String),
    utmCampaign LowCardinality(String),
    utmTerm String CODEC(ZSTD(1)),
    utmContent String CODEC(ZSTD(1)),
    country FixedString(2) CODEC(ZSTD(1)),
    city LowCardinality(String),
    region LowCardinality(String),
    os LowCardinality(String),
    osVersion LowCardinality(String),
    browser LowCardinality(String),
    browserVersion LowCardinality(String),
    device LowCardinality(String),
    brand LowCardinality(String),
    model LowCardinality(String),
    version UInt64,
    INDEX idx_start start TYPE minmax GRANULARITY 1
)
ENGINE = {{replicated}}ReplacingMergeTree(version)
PARTITION BY toYYYYMM(start)
ORDER BY (projectId, id)
{{retention_ttl(start)}}
SETTINGS non_replicated_deduplication_window = 10000;

-- profiles: one row per (project, profile), the latest by lastSeenAt.
-- Traits come from events named `identify` (their properties); the view
-- below writes them as the events arrive.
CREATE TABLE IF NOT EXISTS {{database}}.profiles {{on_cluster}}
(
    projectId LowCardinality(String),
    profileId String CODEC(ZSTD(1)),
    deviceId String CODEC(ZSTD(1)),
    lastSeenAt DateTime64(3, 'UTC') CODEC(Delta, ZSTD(1)),
    properties Map(String, String) CODEC(ZSTD(1))
)
ENGINE = {{replicated}}ReplacingMergeTree(lastSeenAt)
ORDER BY (projectId, profileId);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.profiles_mv {{on_cluster}} TO {{database}}.profiles AS
SELECT projectId, profileId, deviceId, createdAt AS lastSeenAt, properties
FROM {{database}}.events
WHERE name = 'identify' AND profileId != '';
