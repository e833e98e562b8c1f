import type { Command } from 'commander';
import { withClickHouse } from './context.js';
import { Presets, SingleBar } from 'cli-progress';
import { dropLegacy, migrateLegacy, rollbackLegacy } from '../clickhouse/legacy.js';
import { loadConfig } from '../config.js';
import { out } from './output.js';

export function registerMigrateLegacy(program: Command): void {
  program
    .command('migrate-legacy')
    .description('convert a legacy events table (properties as a JSON string) to the Map schema, partition by partition, then switch with EXCHANGE TABLES')
    .option('--newest-first', 'copy the newest partitions first', false)
    .option('--rollback', 'switch back to the legacy table kept as events_legacy', false)
    .option('--drop-old', 'drop the kept legacy table (ends the rollback window)', false)
    .action(async (opts: { newestFirst: boolean; rollback: boolean; dropOld: boolean }) => {
      const config = loadConfig(process.env);
      await withClickHouse(config, async (ch) => {
        if (opts.rollback) {
          await rollbackLegacy(ch);
          out(`migrate-legacy: ${ch.database}.events is the legacy table again; the migrated one is ${ch.database}.events_legacy`);
          return;
        }
        if (opts.dropOld) {
          await dropLegacy(ch);
          out(`migrate-legacy: dropped ${ch.database}.events_legacy`);
          return;
        }
        const bar = process.stderr.isTTY ? new SingleBar({ format: ' {partition} [{bar}] {value}/{total} rows, {rate} rows/s', stream: process.stderr }, Presets.shades_classic) : undefined;
        const started = performance.now();
        let barStarted = false;
        const summary = await migrateLegacy(ch, {
          newestFirst: opts.newestFirst,
          onProgress: (done, total, partition) => {
            if (!barStarted) bar?.start(total, 0, { partition, rate: 0 });
            barStarted = true;
            bar?.update(done, { partition, rate: Math.round(done / ((performance.now() - started) / 1000)) });
          },
        });
        bar?.stop();
        const seconds = (performance.now() - started) / 1000;
        out(
          `migrate-legacy: ${summary.state}; partitions=${summary.partitions.length} rows_copied=${summary.rowsCopied} ` +
            `unparsed_properties=${summary.unparsedProperties} seconds=${seconds.toFixed(1)} rows_per_s=${Math.round(summary.rowsCopied / Math.max(seconds, 1e-9))}`,
        );
        if (summary.state === 'switched') out(`the legacy table is kept as ${ch.database}.events_legacy: --rollback to switch back, --drop-old to drop it`);
      });
    });
}
