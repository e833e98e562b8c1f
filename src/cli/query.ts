import type { Command } from 'commander';
import { openClickHouse } from '../clickhouse/client.js';
import { loadConfig } from '../config.js';

export function registerQuery(program: Command): void {
  program
    .command('query')
    .description('run a SQL query against ClickHouse (server or embedded) and print the rows as JSONEachRow')
    .argument('<sql>', 'the query; qualify tables with the database, e.g. event_lens.events')
    .action(async (sql: string) => {
      const config = loadConfig(process.env);
      const ch = await openClickHouse(config);
      try {
        const rs = await ch.client.query({ query: sql, format: 'JSONEachRow' });
        for await (const rows of rs.stream()) {
          for (const row of rows) process.stdout.write(`${row.text}\n`);
        }
      } finally {
        await ch.close();
      }
    });
}
