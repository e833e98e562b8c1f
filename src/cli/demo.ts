import type { Command } from 'commander';
import { ulid } from 'ulid';
import { queryRows } from '../clickhouse/client.js';
import { loadConfig, type Config } from '../config.js';
import { DEMO_VISIBILITY, defaultStartMs, generateEvents } from '../generate/model.js';
import { connectRedis, deleteByPrefix } from '../ops/redis.js';
import { startRedisServer, type RedisServerHandle } from '../ops/redis-server.js';
import { replay } from '../replay/replay.js';
import { openPipeline } from './context.js';
import { int } from './flags.js';
import { err, out, table } from './output.js';

async function* asLines(items: readonly unknown[]): AsyncGenerator<string> {
  for (const item of items) yield JSON.stringify(item);
}

/** Uses REDIS_URL when it answers; otherwise starts a private redis-server for the demo. */
async function demoRedis(config: Config): Promise<{ url: string; server?: RedisServerHandle }> {
  try {
    (await connectRedis(config.redisUrl, 1_000)).disconnect();
    return { url: config.redisUrl };
  } catch {
    const server = await startRedisServer();
    err(`demo: no Redis at REDIS_URL; started a private redis-server on port ${server.port}`);
    return { url: server.url, server };
  }
}

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('generate sessions, replay them through the buffer into embedded ClickHouse, print pages with time on page')
    .option('--sessions <n>', 'number of sessions to generate', int(1), 3_000)
    .option('--seed <s>', 'random seed', int(), 7)
    .action(async (opts: { sessions: number; seed: number }) => {
      const base = loadConfig(process.env);
      const redis = await demoRedis(base);
      // its own database (recreated each run) and its own Redis key prefix (removed at the end)
      const config: Config = { ...base, redisUrl: redis.url, clickhouseDatabase: `${base.clickhouseDatabase}_demo`, keyPrefix: `demo-${ulid()}` };
      const where = config.clickhouseUrl ? 'ClickHouse server' : `embedded ClickHouse in ${config.dataDir}`;
      out(`demo: ${opts.sessions} sessions (seed ${opts.seed}) -> Redis session buffer -> ${where}, database ${config.clickhouseDatabase}`);
      // sessions of the last hours, so `report pages` with its default range (the last 30 days) shows them
      const events = generateEvents({ sessions: opts.sessions, seed: opts.seed, startMs: defaultStartMs(opts.sessions, Date.now()), visibilityFraction: DEMO_VISIBILITY });
      // a fresh demo database each run (the views' aggregates would otherwise accumulate)
      const pipeline = await openPipeline(config, { fresh: true });
      try {
        const s = await replay(asLines(events), pipeline.buffer, pipeline.flusher, { clock: 'event', drain: true, maxFutureMs: config.maxFutureMs });
        out(
          `replayed ${s.read} events in ${s.seconds.toFixed(1)} s (${Math.round(s.read / s.seconds)} events/s): ` +
            `accepted=${s.accepted} rejected=${s.rejected} duplicates=${s.duplicates} late=${s.late} rows_written=${s.rowsWritten} sessions_written=${s.sessionsWritten}`,
        );
        const db = config.clickhouseDatabase;
        const pages = await queryRows(
          pipeline.ch,
          `SELECT projectId AS project, path, count() AS views,
                  round(avg(duration) / 1000, 1) AS avg_time_on_page_s,
                  round(quantile(0.5)(duration) / 1000, 1) AS median_s,
                  round(avg(engagedMs) / 1000, 1) AS avg_engaged_s,
                  round(quantile(0.5)(engagedMs) / 1000, 1) AS median_engaged_s,
                  countIf(duration IS NULL) AS unknown_duration
             FROM ${db}.events WHERE name = 'screen_view'
            GROUP BY projectId, path ORDER BY views DESC, path LIMIT 12`,
        );
        out('\nTop pages with time on page and engaged time (time the page was seen); NULL is unknown and left out of the averages:');
        out(table(pages));
        const [totals] = await queryRows(
          pipeline.ch,
          `SELECT count() AS rows, countIf(name = 'screen_view') AS screen_views, countIf(name = 'session_end') AS session_ends,
                  uniqExact(sessionId) AS sessions FROM ${db}.events`,
        );
        out(`\nrows in ClickHouse: ${JSON.stringify(totals)}`);
        out(`try: CLICKHOUSE_DATABASE=${db} npx event-lens report pages --project acme-shop`);
        out(`     npx event-lens query "SELECT name, count() FROM ${db}.events GROUP BY name"`);
      } finally {
        await deleteByPrefix(pipeline.redis, `${config.keyPrefix}:`);
        await pipeline.close();
        await redis.server?.stop();
      }
    });
}
