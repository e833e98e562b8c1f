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
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { redactUrl, type Config } from '../config.js';
import { EventLensError } from '../errors.js';
import { endpointUrl, readEndpoint, serveEmbedded } from './embedded-endpoint.js';
import { EMBEDDED_SETTING_DEFAULTS } from './settings.js';

type ChdbAsClientConnection = NonNullable<Parameters<typeof createClient>[0]>['connection'];

/**
 * The embedded engine is an optional dependency (about 540 MB): a producer, or a
 * worker for a ClickHouse server, installs without it (`npm i --omit=optional`).
 * It is loaded only when the embedded default is used.
 */
async function loadChdb(): Promise<typeof import('chdb/connection')> {
  try {
    return await import('chdb/connection');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new EventLensError(
        'EMBEDDED_MISSING',
        'the embedded ClickHouse engine (npm package chdb) is not installed: set CLICKHOUSE_URL to a ClickHouse server, or run `npm install chdb`',
        { cause: err },
      );
    }
    throw err;
  }
}

export interface ClickHouse {
  client: ClickHouseClient;
  database: string;
  /** server: CLICKHOUSE_URL; embedded: this process owns the chDB directory; shared: another process owns it and serves it. */
  kind: 'server' | 'embedded' | 'shared';
  close(): Promise<void>;
}

export interface OpenOptions {
  /** Serve the embedded engine to other local processes (long-running owners: the worker). */
  serve?: boolean;
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
      if (Number.isInteger(owner) && owner > 0 && processAlive(owner)) {
        throw new EventLensError(
          'EMBEDDED_BUSY',
          `the embedded ClickHouse data directory ${dir} is in use by process ${owner}, which does not share it ` +
            '(only `event-lens worker` serves it to other processes); stop that process, point EVENT_LENS_DATA_DIR elsewhere, ' +
            'or set CLICKHOUSE_URL to a ClickHouse server',
        );
      }
      unlinkSync(lockFile); // left by a process that died
    }
  }
  throw new EventLensError('EMBEDDED_BUSY', `could not lock ${lockFile}`);
}

function serverClient(url: string, database: string, kind: 'server' | 'shared'): ClickHouse {
  // the client's own console logger is off: failures reach our callers as errors and are
  // logged once, as JSON, with the URL redacted
  const client = createClient({ url, request_timeout: 60_000, compression: { request: false, response: false }, log: { level: ClickHouseLogLevel.OFF } });
  return { client, database, kind, close: () => client.close() };
}

/** A ClickHouse server that answers, or an error naming the (redacted) URL. */
async function reachable(ch: ClickHouse, url: string): Promise<ClickHouse> {
  const ping = await ch.client.ping();
  if (ping.success) return ch;
  await ch.close();
  throw new EventLensError('CLICKHOUSE_UNREACHABLE', `cannot use ClickHouse at ${redactUrl(url)}: ${ping.error.message}`, { cause: ping.error });
}

/**
 * Opens ClickHouse as the config says: the server at CLICKHOUSE_URL; else the
 * embedded engine in the data directory; or, when another live process owns
 * that directory and serves it, that process's loopback endpoint.
 */
export async function openClickHouse(
  config: Pick<Config, 'clickhouseUrl' | 'dataDir' | 'clickhouseDatabase'>,
  options: OpenOptions = {},
): Promise<ClickHouse> {
  if (config.clickhouseUrl) return reachable(serverClient(config.clickhouseUrl, config.clickhouseDatabase, 'server'), config.clickhouseUrl);
  mkdirSync(config.dataDir, { recursive: true });
  const shared = readEndpoint(config.dataDir);
  if (shared) return serverClient(endpointUrl(shared), config.clickhouseDatabase, 'shared');
  const { createChdbConnection } = await loadChdb();
  const unlock = lockDataDir(config.dataDir);
  try {
    // chdb types its connection against its own copy of @clickhouse/client-common;
    // the shapes are the same contract (chdb's parity tests), only the declarations differ.
    const connection = createChdbConnection({ path: path.join(config.dataDir, 'chdb') }) as unknown as ChdbAsClientConnection;
    const client = createClient({ connection, clickhouse_settings: EMBEDDED_SETTING_DEFAULTS });
    const endpoint = options.serve ? await serveEmbedded(client, config.dataDir) : undefined;
    return {
      client,
      database: config.clickhouseDatabase,
      kind: 'embedded',
      close: async () => {
        await endpoint?.close();
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
