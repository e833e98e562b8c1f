/**
 * A loopback HTTP endpoint that speaks enough of ClickHouse's HTTP interface
 * for @clickhouse/client, served by the process that owns an embedded chDB
 * data directory. Other processes (`query`, `status`, more workers) find its
 * URL in `<dataDir>/endpoint.json` and simply use it as CLICKHOUSE_URL, so a
 * directory is never opened by two engines and nobody meets a lock error.
 *
 * Supported: POST with the SQL in the body (queries and commands), POST with
 * `?query=INSERT … FORMAT X` and the data in the body (inserts), `param_<name>`
 * query parameters, ClickHouse settings as URL parameters, and GET /ping.
 * It listens on 127.0.0.1 only, and answers only a caller that presents the
 * random secret written to `endpoint.json` (mode 0600, so only the owner's
 * user can read it): as the password of HTTP basic auth, which
 * @clickhouse/client sends, or in `X-ClickHouse-Key`. `/ping` needs none.
 *
 * The owner runs every request on its one chDB session, and chDB keeps
 * settings per session, so a client could change how the owner's own flushes
 * behave (`insert_deduplicate = 0` would silently turn off batch
 * deduplication). The endpoint therefore accepts only the settings the owner
 * restates on every call (EMBEDDED_SETTING_DEFAULTS) and refuses SET
 * statements, with an error that says so.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { EMBEDDED_SETTING_DEFAULTS } from './settings.js';

/** URL parameters that are part of the protocol, not settings. */
const PROTOCOL_PARAMS = new Set(['query', 'database', 'query_id', 'session_id', 'session_timeout', 'session_check', 'default_format', 'user', 'password', 'role']);
/** HTTP-transport settings that mean nothing here (no compression, no progress headers). */
const DROPPED_SETTINGS = new Set(['enable_http_compression', 'http_zlib_compression_level', 'wait_end_of_query', 'send_progress_in_http_headers']);
const ALLOWED_SETTINGS = new Set(Object.keys(EMBEDDED_SETTING_DEFAULTS));
/** A SET statement, alone or after another statement. */
const SET_STATEMENT = /(^|;)\s*SET\s/i;

export interface EndpointInfo {
  url: string;
  pid: number;
  /** The secret a caller presents (basic-auth password or X-ClickHouse-Key). */
  secret: string;
}

export const ENDPOINT_FILE = 'endpoint.json';

/** The endpoint advertised in a data directory, if its process is alive. */
export function readEndpoint(dataDir: string): EndpointInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path.join(dataDir, ENDPOINT_FILE), 'utf8')) as EndpointInfo;
    process.kill(info.pid, 0);
    return typeof info.secret === 'string' ? info : undefined;
  } catch {
    return undefined;
  }
}

function errorBody(err: unknown): { status: number; code: string; text: string } {
  const e = err as { code?: unknown; type?: unknown; message?: unknown };
  const code = typeof e.code === 'string' && /^\d+$/.test(e.code) ? e.code : '1002';
  const type = typeof e.type === 'string' ? e.type : 'UNKNOWN_EXCEPTION';
  const message = String(e.message ?? err).replace(/\s+$/, '');
  return { status: 500, code, text: `Code: ${code}. DB::Exception: ${message} (${type})\n` };
}

/** Serves the embedded engine to other local processes and advertises it in the data directory. */
export async function serveEmbedded(client: ClickHouseClient, dataDir: string): Promise<{ url: string; close(): Promise<void> }> {
  const secret = randomBytes(32).toString('hex');
  const server = http.createServer((req, res) => {
    if (!req.url?.startsWith('/ping') && !presents(req, secret)) {
      res
        .writeHead(401, { 'content-type': 'text/plain', 'x-clickhouse-exception-code': '516' })
        .end('Code: 516. DB::Exception: the embedded endpoint needs the secret in <data dir>/endpoint.json (AUTHENTICATION_FAILED)\n');
      return;
    }
    void handle(client, req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const file = path.join(dataDir, ENDPOINT_FILE);
  // created with 0600 (and set so, in case a file of an earlier owner was there)
  writeFileSync(file, JSON.stringify({ url, pid: process.pid, secret } satisfies EndpointInfo), { mode: 0o600 });
  chmodSync(file, 0o600);
  return {
    url,
    close: async () => {
      rmSync(file, { force: true });
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The caller presents the secret: basic-auth password (any user) or X-ClickHouse-Key, compared in constant time. */
function presents(req: http.IncomingMessage, secret: string): boolean {
  const auth = req.headers.authorization;
  let given = req.headers['x-clickhouse-key'];
  if (typeof given !== 'string' && auth?.startsWith('Basic ')) {
    const decoded = Buffer.from(auth.slice(6), 'base64').toString('utf8');
    given = decoded.slice(decoded.indexOf(':') + 1);
  }
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(secret);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function handle(client: ClickHouseClient, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/ping') {
    res.writeHead(200, { 'content-type': 'text/plain' }).end('Ok.\n');
    return;
  }
  if ((req.headers['content-type'] ?? '').startsWith('multipart/')) {
    res.writeHead(400).end('Code: 1002. DB::Exception: multipart query parameters are not supported by the embedded endpoint (BAD_ARGUMENTS)\n');
    return;
  }
  const queryParams: Record<string, string> = {};
  const settings: Record<string, string> = {};
  const refused: string[] = [];
  for (const [key, value] of url.searchParams) {
    if (key.startsWith('param_')) queryParams[key.slice(6)] = value;
    else if (ALLOWED_SETTINGS.has(key)) settings[key] = value;
    else if (!PROTOCOL_PARAMS.has(key) && !DROPPED_SETTINGS.has(key)) refused.push(key);
  }
  const queryId = url.searchParams.get('query_id') ?? crypto.randomUUID();
  const refuse = (message: string): void => {
    res.writeHead(400, { 'content-type': 'text/plain', 'x-clickhouse-exception-code': '115' }).end(`Code: 115. DB::Exception: ${message} (UNKNOWN_SETTING)\n`);
  };
  if (refused.length > 0) {
    refuse(
      `the embedded endpoint does not accept the settings ${refused.join(', ')}: they would persist in the owning process's session. ` +
        `Accepted: ${[...ALLOWED_SETTINGS].join(', ')}; use a ClickHouse server (CLICKHOUSE_URL) for others`,
    );
    return;
  }
  try {
    const body = await readBody(req);
    const inUrl = url.searchParams.get('query');
    if (SET_STATEMENT.test(inUrl ?? body.toString('utf8'))) {
      refuse('SET statements are refused by the embedded endpoint: a setting would persist in the owning process\'s session');
      return;
    }
    const { Readable } = await import('node:stream');
    const result = await client.exec({
      query: inUrl ?? body.toString('utf8'),
      ...(inUrl !== null ? { values: Readable.from([body], { objectMode: false }) } : {}),
      query_params: queryParams,
      clickhouse_settings: settings,
      query_id: queryId,
    });
    res.writeHead(200, {
      'content-type': 'text/plain; charset=UTF-8',
      'x-clickhouse-query-id': queryId,
      'x-clickhouse-summary': JSON.stringify(result.summary ?? {}),
    });
    result.stream.pipe(res);
  } catch (err) {
    const e = errorBody(err);
    res.writeHead(e.status, { 'content-type': 'text/plain', 'x-clickhouse-exception-code': e.code, 'x-clickhouse-query-id': queryId }).end(e.text);
  }
}

/** The endpoint as a CLICKHOUSE_URL with its secret as the password (for a process that read endpoint.json). */
export const endpointUrl = (info: EndpointInfo): string => {
  const u = new URL(info.url);
  u.username = 'event-lens';
  u.password = info.secret;
  return u.toString().replace(/\/$/, '');
};
