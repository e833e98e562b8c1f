/**
 * Redis credentials and TLS, through real processes:
 * - a worker given a wrong password (or an unknown ACL user) refuses to start,
 *   with a message that names the redacted URL and never prints the password;
 * - an ACL user limited to Event Lens's key patterns is enough to run;
 * - rediss:// (TLS, CA from NODE_EXTRA_CA_CERTS) carries the whole path;
 * - a ClickHouse password never reaches the output either.
 */
import { execFile, spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startRedisServer, type RedisServerHandle } from '../../../src/ops/redis-server.js';

const BIN = path.resolve(import.meta.dirname, '../../../bin/event-lens.js');
const dir = mkdtempSync(path.join(os.tmpdir(), 'event-lens-sec-'));
const servers: RedisServerHandle[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>, timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', METRICS_PORT: '0', ...env }, timeout: timeoutMs }, (error, stdout, stderr) =>
      resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** Starts a worker, enqueues one event through `replay --enqueue`, and reads the accepted counter with `status --json`. */
async function roundTrip(env: Record<string, string>): Promise<number> {
  const worker = spawn(process.execPath, [BIN, 'worker', '--role', 'ingest'], { env: { PATH: process.env.PATH ?? '', METRICS_PORT: '0', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  worker.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    const file = path.join(dir, `one-${Math.random().toString(36).slice(2)}.ndjson`);
    writeFileSync(file, `${JSON.stringify({ id: 'sec-1', projectId: 'p', name: 'click', createdAt: new Date().toISOString() })}\n`);
    const enq = await run(['replay', '--enqueue', file], env);
    expect(enq.stderr).not.toMatch(/error/i);
    for (let i = 0; i < 100; i += 1) {
      const status = await run(['status', '--json'], env);
      const accepted = status.code === 0 ? Number((JSON.parse(status.stdout) as { counters: { accepted?: number } }).counters.accepted ?? 0) : 0;
      if (accepted > 0) return accepted;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`the event was not ingested; worker said: ${stderr.slice(0, 500)}`);
  } finally {
    worker.kill('SIGTERM');
    await new Promise((r) => worker.once('exit', r));
  }
}

describe('Redis credentials', () => {
  it('refuses to start on a wrong password or an unknown ACL user, without printing the password', async () => {
    const server = await startRedisServer({ args: ['--requirepass', 'right-pass-4411'] });
    servers.push(server);
    for (const url of [`redis://:wrong-pass-9931@127.0.0.1:${server.port}`, `redis://nobody:wrong-pass-9931@127.0.0.1:${server.port}`]) {
      const r = await run(['worker', '--role', 'ingest'], { REDIS_URL: url });
      expect(r.code).not.toBe(0);
      expect(r.stderr).toMatch(/cannot use Redis at redis:\/\/(nobody)?:\*\*\*@127\.0\.0\.1/);
      expect(r.stderr).toMatch(/WRONGPASS|invalid (username-)?password/i);
      expect(r.stderr).not.toContain('wrong-pass-9931');
    }
  });

  it('runs with an ACL user limited to the buffer and queue keys', async () => {
    const acl = ['--user', 'default', 'off', '--user', 'eventlens', 'on', '>acl-pass-5521', '~el:*', '~bull:*', '&*', '+@all', '-@dangerous', '+info', '+config|get', '+client|setname', '+client|getname'];
    const server = await startRedisServer({ args: acl });
    servers.push(server);
    const env = { REDIS_URL: `redis://eventlens:acl-pass-5521@127.0.0.1:${server.port}` };
    expect(await roundTrip(env)).toBe(1);
    // the same user cannot touch other keys
    const other = execFileSync('redis-cli', ['-p', String(server.port), '--user', 'eventlens', '--pass', 'acl-pass-5521', '--no-auth-warning', 'SET', 'other:key', '1']).toString();
    expect(other).toMatch(/NOPERM/);
  });
});

describe('Redis over TLS', () => {
  it('carries the whole path over rediss:// and refuses plain redis:// to a TLS port', async () => {
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'ignore' });
    const port = await freePort();
    const server = await startRedisServer({
      port,
      args: ['--port', '0', '--tls-port', String(port), '--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', cert, '--tls-auth-clients', 'no', '--requirepass', 'tls-pass-7781'],
    });
    servers.push(server);
    const env = { REDIS_URL: `rediss://:tls-pass-7781@localhost:${port}`, NODE_EXTRA_CA_CERTS: cert };
    expect(await roundTrip(env)).toBe(1);
    const plain = await run(['status'], { REDIS_URL: `redis://:tls-pass-7781@localhost:${port}` }, 20_000);
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/cannot use Redis at redis:\/\/:\*\*\*@localhost/);
    expect(plain.stderr).not.toContain('tls-pass-7781');
  });
});

describe('ClickHouse credentials', () => {
  it('names an unreachable server by its redacted URL and never prints the password', async () => {
    const redis = await startRedisServer();
    servers.push(redis);
    const port = await freePort();
    const r = await run(['worker', '--role', 'flush'], { REDIS_URL: redis.url, CLICKHOUSE_URL: `http://writer:ch-pass-3391@127.0.0.1:${port}` });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/cannot use ClickHouse at http:\/\/writer:\*\*\*@127\.0\.0\.1/);
    expect(r.stderr).not.toContain('ch-pass-3391');
  });
});
