import { PassThrough } from 'node:stream';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { ScriptError } from '../../../src/errors.js';
import { createLogger } from '../../../src/ops/log.js';

/** A Redis error as ioredis hands it over: the failed command's arguments attached (event payloads, addresses). */
function replyError(): Error {
  const err = new ReplyError('ERR user_script:1: Script attempted to access nonexistent global variable') as Error & { command?: unknown };
  err.command = { name: 'evalsha', args: ['0123abcd', '1', 'el:{0}:due', '["01M3",null,"secret-path",{"ip":"203.0.113.9"}]'] };
  return err;
}

async function logged(err: unknown): Promise<string> {
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  createLogger('info', 'event-lens', out).error({ err }, 'job failed');
  await new Promise((r) => setImmediate(r));
  return Buffer.concat(chunks).toString('utf8');
}

describe('error logs', () => {
  it("never carry a client error's command arguments, at the top or in the cause chain, and keep its message", async () => {
    for (const err of [replyError(), new ScriptError('ingest', 'failed', { cause: replyError() }), Object.assign(new Error('cluster down'), { lastNodeError: replyError() })]) {
      const line = await logged(err);
      expect(line).not.toContain('203.0.113.9');
      expect(line).not.toContain('secret-path');
      expect(JSON.parse(line).err.message).toMatch(/nonexistent global variable|cluster down/);
    }
  });
});
