import type { Command } from 'commander';
import { SessionBuffer } from '../buffer/session-buffer.ts';
import { loadConfig } from '../config.ts';
import { connectRedis } from '../ops/redis.ts';
import { out, table } from './output.ts';

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description('show the buffer: held sessions and backlog per shard, counters; or one session\'s held events')
    .option('--session <projectId/sessionId>', "print one session's held events and their state as JSON (live view)")
    .option('--json', 'print JSON', false)
    .action(async (opts: { session?: string; json: boolean }) => {
      const config = loadConfig(process.env);
      const redis = await connectRedis(config.redisUrl);
      try {
        const buffer = new SessionBuffer(redis, config);
        if (opts.session) {
          const { projectId, sessionId } = SessionBuffer.parseSessionArg(opts.session);
          out(JSON.stringify(await buffer.sessionView(projectId, sessionId), null, 2));
          return;
        }
        const [backlog, stats] = await Promise.all([buffer.backlog(), buffer.stats()]);
        if (opts.json) {
          out(JSON.stringify({ shards: backlog, counters: stats }));
          return;
        }
        out(table(backlog.map((b) => ({ shard: b.shard, held_sessions: b.heldSessions, ready_rows: b.ready, batch_rows: b.inBatch }))));
        out('');
        out(Object.entries(stats).map(([k, v]) => `${k}=${v}`).join(' ') || 'no counters yet');
      } finally {
        redis.disconnect();
      }
    });
}
