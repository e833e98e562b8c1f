import type { Command } from 'commander';
import { withClickHouse } from './context.js';
import { parseWhere, type Filter } from '../clickhouse/filters.js';
import { REPORTS, runReport, type ReportName } from '../clickhouse/reports.js';
import { loadConfig } from '../config.js';
import { int } from './flags.js';
import { err, out, table } from './output.js';

const DAY = /^\d{4}-\d{2}-\d{2}$/;
const isoDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('dashboard reports from the materialized views (pages with time on page and engaged time, referrers, daily metrics)')
    .argument('<report>', REPORTS.join(' | '))
    .requiredOption('--project <id>', 'project id')
    .option('--from <YYYY-MM-DD>', 'first day (default: 30 days ago)')
    .option('--to <YYYY-MM-DD>', 'last day (default: today)')
    .option('--where <expr>', 'filter on raw events: key=value, key!=value, key~=regex, key^=prefix, key*=text, key>n, key<n, key? (repeatable; keys that are not columns are properties)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--limit <n>', 'rows', int(1, 100_000), 20)
    .option('--json', 'print JSONEachRow', false)
    .action(async (name: string, opts: { project: string; from?: string; to?: string; where: string[]; limit: number; json: boolean }) => {
      if (!(REPORTS as readonly string[]).includes(name)) throw new Error(`report ${JSON.stringify(name)}: expected one of ${REPORTS.join(', ')}`);
      const from = opts.from ?? isoDay(Date.now() - 30 * 86_400_000);
      const to = opts.to ?? isoDay(Date.now());
      for (const [flag, v] of [['--from', from], ['--to', to]] as const) {
        if (!DAY.test(v)) throw new Error(`${flag} ${JSON.stringify(v)}: expected YYYY-MM-DD`);
      }
      const where: Filter[] = opts.where.map(parseWhere);
      const config = loadConfig(process.env);
      await withClickHouse(config, async (ch) => {
        const rows = await runReport(ch, name as ReportName, { projectId: opts.project, from, to, where, limit: opts.limit });
        if (opts.json) for (const r of rows) out(JSON.stringify(r));
        else out(table(rows));
        // an empty report says which range it read, so a stream outside it is easy to spot
        if (rows.length === 0) err(`report ${name}: no rows for project ${JSON.stringify(opts.project)} from ${from} to ${to} (UTC days; set --from/--to for another range)`);
      });
    });
}
