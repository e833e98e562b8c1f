-- 0004: engaged time (DESIGN §2 E1) beside every screen_view's duration.
--
-- events.engagedMs: how long the page was seen, in ms: the view's duration
-- minus the time it was hidden (page_hidden / page_visible events), settled
-- by the buffer like duration. NULL where unknown, and for rows written
-- before this migration (they keep NULL; nothing is rewritten).
-- sessions.engagedMs: the engaged time of the session's views, summed.
ALTER TABLE {{database}}.events {{on_cluster}} ADD COLUMN IF NOT EXISTS engagedMs Nullable(UInt64) CODEC(T64, ZSTD(1)) AFTER screenViews;

ALTER TABLE {{database}}.sessions {{on_cluster}} ADD COLUMN IF NOT EXISTS engagedMs Nullable(UInt64) CODEC(T64, ZSTD(1)) AFTER screenViews;

-- Serves: engaged time per page beside pages_daily's time on page (a view of
-- its own: a materialized view's query is not changed in place). Rows with
-- a known engaged time only, so the average and the median are over those.
--   SELECT path, sum(engagedSum) / sum(engagedCount), quantileTDigestMerge(0.5)(engagedMedian)
--   FROM pages_engaged_daily WHERE projectId = {p:String} AND day BETWEEN … GROUP BY path
CREATE TABLE IF NOT EXISTS {{database}}.pages_engaged_daily {{on_cluster}}
(
    projectId LowCardinality(String),
    day Date,
    origin LowCardinality(String),
    path LowCardinality(String),
    engagedSum SimpleAggregateFunction(sum, UInt64),
    engagedCount SimpleAggregateFunction(sum, UInt64),
    engagedMedian AggregateFunction(quantileTDigest(0.5), UInt64)
)
ENGINE = {{replicated}}AggregatingMergeTree
ORDER BY (projectId, day, origin, path);

CREATE MATERIALIZED VIEW IF NOT EXISTS {{database}}.pages_engaged_daily_mv {{on_cluster}} TO {{database}}.pages_engaged_daily AS
SELECT projectId, toDate(createdAt) AS day, origin, path,
       sum(assumeNotNull(engagedMs)) AS engagedSum, count() AS engagedCount,
       quantileTDigestState(0.5)(assumeNotNull(engagedMs)) AS engagedMedian
FROM {{database}}.events WHERE name = 'screen_view' AND engagedMs IS NOT NULL GROUP BY projectId, day, origin, path;
