import { Queue } from 'bullmq';
import type { Command } from 'commander';
import { parseSessionArg } from '../buffer/inspect.js';
import { SessionBuffer } from '../buffer/session-buffer.js';
import { loadConfig } from '../config.js';
import { bullConnection, redisTarget, releaseBullConnection, type RedisClient } from '../ops/redis.js';
import { withRedis } from './context.js';
import { out, table } from './output.js';

/** What each buffer counter counts (summed over the shards since the keys were created). */
export const COUNTER_MEANINGS: Record<string, string> = {
  accepted: 'events taken into the buffer (valid, not duplicates)',
  duplicate: 'events dropped because their id was seen before in the session (retries)',
  late: 'events that arrived after their neighbours were written (still written)',
  overflow: 'events past the 5 000-event bound of release 0.1.0 (layout 0.5), written without a duration; no longer counted',
  held: 'screen_view rows held right now, waiting for their duration or grace',
  emitted: 'event rows whose duration settled and moved to the ready list',
  finalised: 'sessions ended (session_end + grace, or idle); each writes one sessions row',
  flushed: 'rows ClickHouse confirmed: event rows and sessions rows together',
  dead: 'rows ClickHouse rejected as bad data, in the dead-letter lists now',
  redriven: 'dead letters put back on the ready lists (dead-letters redrive)',
};

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the queue, the buffer per shard (held sessions, backlog, dead letters, lease owner) and counters; or one session\'s held events')
    .option('--session <projectId/sessionId>', "print one session's held events and their state as JSON (live view)")
    .option('--json', 'print JSON', false)
    .action(async (opts: { session?: string; json: boolean }) => {
      const config = loadConfig(process.env);
      await withRedis(config, async (redis) => {
        const buffer = new SessionBuffer(redis, config);
        if (opts.session) {
          const { projectId, sessionId } = parseSessionArg(opts.session);
          out(JSON.stringify(await buffer.sessionView(projectId, sessionId), null, 2));
          return;
        }
        const connection = bullConnection(redisTarget(config), 'producer');
        const queue = new Queue(config.queueName, { connection, prefix: config.queuePrefix });
        const [backlog, stats, jobs, leases] = await Promise.all([
          buffer.backlog(),
          buffer.stats(),
          queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed').finally(async () => {
            await queue.close();
            releaseBullConnection(connection);
          }),
          readLeases(redis, buffer),
        ]);
        const shards = backlog.map((b, i) => ({ ...b, leaseOwner: leases[i]?.owner ?? null, leaseTtlMs: leases[i]?.ttlMs ?? null }));
        if (opts.json) {
          out(JSON.stringify({ queue: { name: config.queueName, ...jobs }, shards, counters: stats }));
          return;
        }
        out(`queue ${config.queueName}: ${Object.entries(jobs).map(([k, v]) => `${k}=${v}`).join(' ')}`);
        out('');
        out(
          table(
            shards.map((b) => ({
              shard: b.shard,
              held_sessions: b.heldSessions,
              ready_rows: b.ready,
              batch_rows: b.inBatch,
              dead_letters: b.dead,
              lease: b.leaseOwner ?? '',
            })),
          ),
        );
        out('');
        const dead = shards.reduce((n, b) => n + b.dead, 0);
        out(`dead letters: ${dead} (event-lens dead-letters list)   failed jobs: ${jobs.failed ?? 0} (event-lens failed list)`);
        out('');
        const counters = Object.entries(stats).map(([counter, value]) => ({ counter, value, counts: COUNTER_MEANINGS[counter] ?? '' }));
        out(counters.length > 0 ? table(counters) : 'no counters yet');
      });
    });
}

async function readLeases(redis: RedisClient, buffer: SessionBuffer): Promise<{ owner: string | null; ttlMs: number | null }[]> {
  // separate commands (auto-pipelined per node): the leases live in different slots on a cluster
  return Promise.all(
    Array.from({ length: buffer.settings.bufferShards }, async (_, shard) => {
      const lease = buffer.shardKeys(shard).lease;
      const [owner, ttl] = await Promise.all([redis.get(lease), redis.pttl(lease)]);
      return { owner, ttlMs: owner === null ? null : ttl };
    }),
  );
}
