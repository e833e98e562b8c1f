import { Queue } from 'bullmq';
import type { Command } from 'commander';
import { loadConfig, redactUrl } from '../config.js';
import { bullConnection, redisTarget, releaseBullConnection } from '../ops/redis.js';
import { int } from './flags.js';
import { out, table } from './output.js';

/** The queue, for one command: BullMQ's connection is bounded by the command timeout of the shared connection options. */
async function withQueue<T>(fn: (queue: Queue) => Promise<T>): Promise<T> {
  const config = loadConfig(process.env);
  const connection = bullConnection(redisTarget(config), 'producer');
  const queue = new Queue(config.queueName, { connection, prefix: config.queuePrefix });
  queue.on('error', () => {}); // the failed call reports it, once
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      fn(queue),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`Redis at ${redactUrl(config.redisUrl)} did not answer within ${config.enqueueTimeoutMs} ms`)), config.enqueueTimeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await Promise.race([queue.close(), new Promise((r) => setTimeout(r, 1_000))]);
    releaseBullConnection(connection);
  }
}

export function registerFailed(program: Command): void {
  const cmd = program.command('failed').description("the queue's failed jobs (invalid events, exhausted retries): list and retry them");
  cmd
    .command('list')
    .description('id, job name, attempts, age and reason of each failed job, newest first')
    .option('--limit <n>', 'jobs', int(1, 100_000), 100)
    .option('--json', 'print JSONEachRow', false)
    .action(async (opts: { limit: number; json: boolean }) =>
      withQueue(async (queue) => {
        const jobs = await queue.getFailed(0, opts.limit - 1);
        const now = Date.now();
        const rows = jobs.map((j) => ({
          id: String(j.id),
          name: j.name,
          attempts: j.attemptsMade,
          age_s: Math.round((now - (j.finishedOn ?? j.timestamp)) / 1000),
          reason: (j.failedReason ?? '').replace(/\s+/g, ' ').slice(0, 160),
        }));
        const total = await queue.getFailedCount();
        if (opts.json) for (const r of rows) out(JSON.stringify(r));
        else out(rows.length === 0 ? 'no failed jobs' : `${table(rows)}\n(${rows.length} of ${total} failed jobs)`);
      }),
    );
  cmd
    .command('retry')
    .description('move failed jobs back to the waiting list (event ids make a retry harmless)')
    .argument('[ids...]', 'job ids')
    .option('--all', 'every failed job', false)
    .action(async (ids: string[], opts: { all: boolean }) =>
      withQueue(async (queue) => {
        if (!opts.all && ids.length === 0) throw new Error('failed retry: name the job ids, or pass --all');
        if (opts.all) {
          const count = await queue.getFailedCount();
          await queue.retryJobs({ state: 'failed', count: 1_000 });
          out(`retried=${count}`);
          return;
        }
        let retried = 0;
        for (const id of ids) {
          const job = await queue.getJob(id);
          if (!job || !(await job.isFailed())) throw new Error(`failed retry: no failed job ${JSON.stringify(id)} (see event-lens failed list)`);
          await job.retry('failed');
          retried += 1;
        }
        out(`retried=${retried}`);
      }),
    );
}
