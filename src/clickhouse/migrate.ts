/**
 * The migration runner. Migrations are numbered SQL files in migrations/
 * (`0001_events.sql`), applied in order and recorded in
 * `<database>.schema_migrations` with a checksum of the file. A landed file
 * is never edited: a recorded migration whose file changed stops the run with
 * an error naming the file. Statements are separated by a `;` at the end of a
 * line (not in a comment). Placeholders filled in from the config:
 * `{{database}}`; `{{retention_ttl(column)}}` (a TTL clause, or nothing);
 * `{{on_cluster}}` (`ON CLUSTER '<name>'` in cluster mode, else nothing);
 * `{{replicated}}` (`Replicated` in cluster mode, so `{{replicated}}MergeTree`
 * becomes ReplicatedMergeTree with the server's default Keeper path).
 * Every statement is idempotent (IF NOT EXISTS), so a run interrupted between
 * statements is finished by the next run.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MigrationError } from '../errors.js';
import { queryRows, type ClickHouse } from './client.js';

export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

export interface Migration {
  version: number;
  name: string;
  checksum: string;
  statements: string[];
}

export interface MigrateOptions {
  retentionDays: number;
  /** Cluster name: statements run ON CLUSTER and tables use Replicated engines. */
  cluster?: string;
  dryRun?: boolean;
  dir?: string;
}

export interface MigrateResult {
  applied: string[];
  skipped: string[];
  /** The statements that ran (or would run, with dryRun). */
  statements: string[];
}

export interface TemplateVars {
  database: string;
  retentionDays: number;
  cluster?: string | undefined;
}

export function renderTemplate(sql: string, vars: TemplateVars): string {
  return sql
    .replaceAll('{{database}}', vars.database)
    .replace(/\{\{retention_ttl\((\w+)\)\}\}/g, (_m, column: string) =>
      vars.retentionDays > 0 ? `TTL toDateTime(${column}) + toIntervalDay(${vars.retentionDays})` : '',
    )
    .replaceAll('{{on_cluster}}', vars.cluster ? `ON CLUSTER '${vars.cluster.replace(/'/g, "''")}'` : '')
    .replaceAll('{{replicated}}', vars.cluster ? 'Replicated' : '');
}

/** Splits a SQL file at `;` that ends a (non-comment) line, dropping comment-only pieces. */
export function splitStatements(sql: string): string[] {
  const statements: string[] = [];
  let current: string[] = [];
  for (const line of sql.split('\n')) {
    const code = line.trimEnd();
    if (!code.trimStart().startsWith('--') && code.endsWith(';')) {
      current.push(code.slice(0, -1));
      statements.push(current.join('\n'));
      current = [];
    } else {
      current.push(line);
    }
  }
  statements.push(current.join('\n'));
  return statements.map((s) => s.trim()).filter((s) => s.replace(/^\s*--.*$/gm, '').trim().length > 0);
}

export function loadMigrations(dir = MIGRATIONS_DIR): Migration[] {
  const files = readdirSync(dir).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
  return files.map((file) => {
    const text = readFileSync(path.join(dir, file), 'utf8');
    return {
      version: Number(file.slice(0, 4)),
      name: file,
      checksum: createHash('sha256').update(text).digest('hex'),
      statements: splitStatements(text),
    };
  });
}

/** Applies the pending migrations in order; returns what was applied and skipped. */
export async function migrate(ch: ClickHouse, options: MigrateOptions): Promise<MigrateResult> {
  const db = ch.database;
  const vars: TemplateVars = { database: db, retentionDays: options.retentionDays, cluster: options.cluster };
  const migrations = loadMigrations(options.dir);
  const result: MigrateResult = { applied: [], skipped: [], statements: [] };
  const tracking = [
    'CREATE DATABASE IF NOT EXISTS {{database}} {{on_cluster}}',
    'CREATE TABLE IF NOT EXISTS {{database}}.schema_migrations {{on_cluster}} (version UInt32, name String, checksum String, ' +
      "appliedAt DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = {{replicated}}MergeTree ORDER BY version",
  ].map((sql) => renderTemplate(sql, vars));
  let recorded = new Map<number, { name: string; checksum: string }>();
  if (options.dryRun) {
    const exists = await queryRows<{ n: number }>(
      ch,
      'SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = {t:String}',
      { db, t: 'schema_migrations' },
    );
    if (Number(exists[0]?.n ?? 0) === 0) result.statements.push(...tracking);
    else recorded = await readRecorded(ch, db);
  } else {
    for (const statement of tracking) await ch.client.command({ query: statement });
    recorded = await readRecorded(ch, db);
  }

  for (const m of migrations) {
    const done = recorded.get(m.version);
    if (done) {
      if (done.checksum !== m.checksum) {
        throw new MigrationError(
          `migrations/${m.name}: the file changed after it was applied (recorded checksum ${done.checksum.slice(0, 12)}, ` +
            `file ${m.checksum.slice(0, 12)}); landed migrations are never edited, add a new numbered file instead`,
        );
      }
      result.skipped.push(m.name);
      continue;
    }
    for (const [i, raw] of m.statements.entries()) {
      const statement = renderTemplate(raw, vars);
      result.statements.push(statement);
      if (options.dryRun) continue;
      try {
        await ch.client.command({ query: statement });
      } catch (err) {
        const first = statement.split('\n').find((l) => l.trim() && !l.trim().startsWith('--')) ?? statement;
        throw new MigrationError(
          `migrations/${m.name}: statement ${i + 1} failed (${first.trim().slice(0, 120)}): ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    if (!options.dryRun) {
      await ch.client.insert({
        table: `${db}.schema_migrations`,
        values: [{ version: m.version, name: m.name, checksum: m.checksum }],
        format: 'JSONEachRow',
      });
    }
    result.applied.push(m.name);
  }
  return result;
}

async function readRecorded(ch: ClickHouse, db: string): Promise<Map<number, { name: string; checksum: string }>> {
  const rows = await queryRows<{ version: number; name: string; checksum: string }>(
    ch,
    `SELECT version, any(name) AS name, any(checksum) AS checksum FROM ${db}.schema_migrations GROUP BY version`,
  );
  return new Map(rows.map((r) => [Number(r.version), { name: r.name, checksum: r.checksum }]));
}
