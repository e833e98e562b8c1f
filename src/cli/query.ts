import type { Command } from 'commander';
import { withClickHouse } from './context.js';
import { loadConfig } from '../config.js';

/** Whether a query ends with its own `FORMAT <name>` clause (an optional `;` after it). */
export const ownFormat = (sql: string): boolean => /\bformat\s+[a-z][\w]*\s*;?\s*$/i.test(sql);

export function registerQuery(program: Command): void {
  program
    .command('query')
    .description('run a SQL query against ClickHouse (server or embedded) and print the rows as JSONEachRow, or in the format its own FORMAT clause names')
    .argument('<sql>', 'the query; qualify tables with the database, e.g. event_lens.events; may end with FORMAT <name>')
    .action(async (sql: string) => {
      const config = loadConfig(process.env);
      await withClickHouse(config, async (ch) => {
        if (ownFormat(sql)) {
          // the query names its format, as in clickhouse-client: ClickHouse's own output, as it is
          const result = await ch.client.exec({ query: sql.trim().replace(/;\s*$/, '') });
          for await (const chunk of result.stream) process.stdout.write(chunk as Buffer);
          return;
        }
        const rs = await ch.client.query({ query: sql, format: 'JSONEachRow' });
        for await (const rows of rs.stream()) {
          for (const row of rows) process.stdout.write(`${row.text}\n`);
        }
      });
    });
}
