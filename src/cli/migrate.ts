import type { Command } from 'commander';
import { withClickHouse } from './context.js';
import { migrate } from '../clickhouse/migrate.js';
import { loadConfig } from '../config.js';
import { out } from './output.js';

export function registerMigrate(program: Command): void {
  program
    .command('migrate')
    .description('apply the pending ClickHouse migrations (idempotent; a second run changes nothing)')
    .option('--dry-run', 'print the statements that would run, change nothing', false)
    .action(async (opts: { dryRun: boolean }) => {
      const config = loadConfig(process.env);
      await withClickHouse(config, async (ch) => {
        const r = await migrate(ch, { retentionDays: config.retentionDays, cluster: config.clickhouseCluster, dryRun: opts.dryRun });
        if (opts.dryRun) for (const s of r.statements) out(`${s};\n`);
        out(`migrate: ${opts.dryRun ? 'would apply' : 'applied'} ${r.applied.length} (${r.applied.join(', ') || 'none'}), up to date ${r.skipped.length}`);
      });
    });
}
