/**
 * Loads lua/*.lua and calls them through typed wrappers. A file is named
 * `<name>-<fixed key count>.lua` (BullMQ's convention); ingest and sweep take
 * three more keys per session after their fixed ones. `--- @include "x"`
 * lines are replaced by lua/includes/x.lua, so helpers are written once.
 *
 * Scripts run with EVALSHA; when Redis answers NOSCRIPT (after a restart,
 * a failover or SCRIPT FLUSH) the call is repeated once with EVAL, which also
 * caches the script again. Negative answers are the codes in `ScriptCode`.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ScriptError } from '../errors.js';
import type { RedisClient } from '../ops/redis.js';

/** Negative return codes of the scripts (see each script's header). */
export const ScriptCode = {
  ARGS_MISMATCH: -1,
  BATCH_MISMATCH: -2,
  LEASE_HELD: -3,
} as const;

const LUA_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../lua');

function resolveIncludes(source: string, seen: Set<string>): string {
  return source.replace(/^--- @include "([\w-]+)"$/gm, (_line, name: string) => {
    if (seen.has(name)) return '';
    seen.add(name);
    return resolveIncludes(readFileSync(path.join(LUA_DIR, 'includes', `${name}.lua`), 'utf8'), seen);
  });
}

/** Receives the duration of every script call (the worker feeds a histogram with it). */
export type ScriptObserver = (script: string, seconds: number) => void;
let observer: ScriptObserver | undefined;

/** Sets the process-wide observer of script durations (metrics). */
export function observeScripts(fn: ScriptObserver | undefined): void {
  observer = fn;
}

export class LuaScript {
  readonly source: string;
  readonly sha: string;

  constructor(
    readonly name: string,
    readonly fixedKeys: number,
    source: string,
  ) {
    this.source = resolveIncludes(source, new Set());
    this.sha = createHash('sha1').update(this.source).digest('hex');
  }

  /** Runs the script; retries once with EVAL when the script cache was emptied. */
  async run(redis: RedisClient, keys: readonly string[], args: readonly (string | number)[]): Promise<unknown> {
    const started = performance.now();
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && err.message.startsWith('NOSCRIPT')) {
        return await redis.eval(this.source, keys.length, ...keys, ...args);
      }
      throw new ScriptError(this.name, err instanceof Error ? err.message : String(err), { cause: err });
    } finally {
      observer?.(this.name, (performance.now() - started) / 1000);
    }
  }
}

/** Loads lua/<file>; `file` may sit in a subfolder (lua/bench/ holds the benchmark's reference scripts). */
export function loadScript(file: string): LuaScript {
  const match = /([A-Za-z]+)-(\d+)\.lua$/.exec(file);
  if (!match) throw new Error(`lua/${file}: expected a name of the form camelCase-<numKeys>.lua`);
  return new LuaScript(match[1] as string, Number(match[2]), readFileSync(path.join(LUA_DIR, file), 'utf8'));
}

/** The scripts, loaded once per process. */
export const scripts = {
  ingest: loadScript('ingest-4.lua'),
  sweep: loadScript('sweep-4.lua'),
  claimBatch: loadScript('claimBatch-4.lua'),
  ackBatch: loadScript('ackBatch-4.lua'),
  flushGroup: loadScript('flushGroup-2.lua'),
  releaseLease: loadScript('releaseLease-1.lua'),
  intakeSession: loadScript('intakeSession-2.lua'),
  redriveDead: loadScript('redriveDead-3.lua'),
} as const;

/** Which of a visitor's two device records holds its session (lua/intakeSession-2.lua). */
export interface IntakeSessionReply {
  holder: 'today' | 'yesterday';
  sessionId: string;
}

/**
 * The ingestion server's session decision: the live session of the device's
 * record under today's or yesterday's id, or `newSessionId` recorded under
 * today's. Atomic, so replicas agree.
 */
export async function intakeSession(
  redis: RedisClient,
  keys: { today: string; yesterday: string },
  args: { nowMs: number; timeoutMs: number; newSessionId: string; ttlMs: number },
): Promise<IntakeSessionReply> {
  const reply = expectArray(
    scripts.intakeSession,
    await scripts.intakeSession.run(redis, [keys.today, keys.yesterday], [args.nowMs, args.timeoutMs, args.newSessionId, args.ttlMs]),
  );
  const [holder, sessionId] = reply;
  if ((holder !== 1 && holder !== 2) || typeof sessionId !== 'string') throw new ScriptError('intakeSession', `unexpected reply ${JSON.stringify(reply)}`);
  return { holder: holder === 1 ? 'today' : 'yesterday', sessionId };
}

/** Fails loudly when a script returned a code, naming the script and the code. */
export function expectArray(script: LuaScript, reply: unknown): unknown[] {
  if (Array.isArray(reply)) return reply as unknown[];
  const name = Object.entries(ScriptCode).find(([, code]) => code === reply)?.[0] ?? 'unexpected reply';
  throw new ScriptError(script.name, `returned ${String(reply)} (${name})`);
}

/** Moves one dead letter's row back to ready (lua/redriveDead-3.lua); false when the entry is gone already. */
export async function redriveDead(redis: RedisClient, keys: { dead: string; ready: string; stats: string }, entry: string, row: string): Promise<boolean> {
  const reply = await scripts.redriveDead.run(redis, [keys.dead, keys.ready, keys.stats], [entry, row]);
  if (reply !== 0 && reply !== 1) throw new ScriptError('redriveDead', `unexpected reply ${JSON.stringify(reply)}`);
  return reply === 1;
}
