/**
 * The ClickHouse client: a server when CLICKHOUSE_URL is set, otherwise the
 * embedded chDB engine behind @clickhouse/client's `connection` option. Same
 * client API, same SQL, same migrations either way. Table names are always
 * qualified with the database, so no code depends on a session default.
 *
 * chDB binds one data directory to one process; a second process opening the
 * same directory would fight over it, so the embedded engine takes an
 * exclusive lock file first and fails with a message that says who holds it.
 */
import { mkdirSync, openSync, closeSync, writeFileSync, readFileSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { createClient, type ClickHouseClient } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import type { Config } from '../config.ts';
import { EventLensError } from '../errors.ts';

type ChdbAsClientConnection = NonNullable<Parameters<typeof createClient>[0]>['connection'];

export interface ClickHouse {
  client: ClickHouseClient;
  database: string;
  kind: 'server' | 'embedded';
  close(): Promise<void>;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the data directory's lock for this process, or explains who holds it. */
function lockDataDir(dir: string): () => void {
  const lockFile = path.join(dir, 'owner.lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      const fd = openSync(lockFile, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => {
        try {
          unlinkSync(lockFile);
        } catch {
          // already gone
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(readFileSync(lockFile, 'utf8'));
      if (Number.isInteger(owner) && owner > 0 && owner !== process.pid && processAlive(owner)) {
        throw new EventLensError(
          'EMBEDDED_BUSY',
          `the embedded ClickHouse data directory ${dir} is in use by process ${owner}; ` +
            'stop it, point EVENT_LENS_DATA_DIR elsewhere, or set CLICKHOUSE_URL to a ClickHouse server',
        );
      }
      unlinkSync(lockFile); // left by a process that died
    }
  }
  throw new EventLensError('EMBEDDED_BUSY', `could not lock ${lockFile}`);
}

/** Opens ClickHouse as the config says. */
export function openClickHouse(config: Pick<Config, 'clickhouseUrl' | 'dataDir' | 'clickhouseDatabase'>): ClickHouse {
  if (config.clickhouseUrl) {
    const client = createClient({ url: config.clickhouseUrl, request_timeout: 60_000 });
    return { client, database: config.clickhouseDatabase, kind: 'server', close: () => client.close() };
  }
  mkdirSync(config.dataDir, { recursive: true });
  const unlock = lockDataDir(config.dataDir);
  try {
    // chdb types its connection against its own copy of @clickhouse/client-common;
    // the shapes are the same contract (chdb's parity tests), only the declarations differ.
    const connection = createChdbConnection({ path: path.join(config.dataDir, 'chdb') }) as unknown as ChdbAsClientConnection;
    const client = createClient({ connection });
    return {
      client,
      database: config.clickhouseDatabase,
      kind: 'embedded',
      close: async () => {
        await client.close();
        unlock();
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}

/** Runs a query and returns its rows as objects. */
export async function queryRows<T = Record<string, unknown>>(
  ch: Pick<ClickHouse, 'client'>,
  query: string,
  params: Record<string, unknown> = {},
): Promise<T[]> {
  const result = await ch.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}
