-- 0001: the events table (DESIGN §5). One row per event; screen_view and
-- session_end rows carry their settled duration in ms (NULL = unknown).
--
-- Sort key: dashboards filter by project and time range, then by event name
-- (screen_view for pages); ordering by sessionId next keeps one session's rows
-- together, so the per-session columns (device, geo, referrer, user agent)
-- compress to almost nothing and "one session's events" reads few granules.
-- Retried batches carry an insert_deduplication_token; the dedup window keeps
-- the tokens of the last 10 000 blocks (in cluster mode the Replicated engine
-- deduplicates through Keeper by default).
CREATE DATABASE IF NOT EXISTS {{database}} {{on_cluster}};

CREATE TABLE IF NOT EXISTS {{database}}.events {{on_cluster}}
(
    id String CODEC(ZSTD(1)),
    projectId LowCardinality(String),
    name LowCardinality(String),
    deviceId String CODEC(ZSTD(1)),
    profileId String CODEC(ZSTD(1)),
    sessionId String CODEC(ZSTD(1)),
    createdAt DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    timestamp DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    country FixedString(2) CODEC(ZSTD(1)),
    city LowCardinality(String),
    region LowCardinality(String),
    latitude Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    longitude Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    os LowCardinality(String),
    osVersion LowCardinality(String),
    browser LowCardinality(String),
    browserVersion LowCardinality(String),
    device LowCardinality(String),
    brand LowCardinality(String),
    model LowCardinality(String),
    path LowCardinality(String),
    origin LowCardinality(String),
    referrer String CODEC(ZSTD(1)),
    referrerName LowCardinality(String),
    referrerType LowCardinality(String),
    utmSource LowCardinality(String),
    utmMedium LowCardinality(String),
    utmCampaign LowCardinality(String),
    utmTerm String CODEC(ZSTD(1)),
    utmContent String CODEC(ZSTD(1)),
    properties Map(String, String) CODEC(LZ4),
    duration Nullable(UInt64) CODEC(T64, ZSTD(1)),
    screenViews UInt32 CODEC(T64, ZSTD(1)),
    ip String CODEC(ZSTD(1)),
    userAgent LowCardinality(String),
    INDEX idx_path path TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_origin origin TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_profile profileId TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_session sessionId TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_property_keys mapKeys(properties) TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = {{replicated}}MergeTree
PARTITION BY toYYYYMM(createdAt)
ORDER BY (projectId, toDate(createdAt), name, sessionId, createdAt)
{{retention_ttl(createdAt)}}
SETTINGS non_replicated_deduplication_window = 10000;
