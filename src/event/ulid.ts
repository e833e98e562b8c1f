/**
 * ULIDs with a pooled random source. The `ulid` package asks the system's
 * CSPRNG for one byte per character (16 calls per id); at ingestion rates
 * that was the intake's largest CPU cost (15 % of `serve` under `bench http`).
 * This draws the same cryptographic bytes 4 KiB at a time.
 */
import { getRandomValues } from 'node:crypto';
import { ulid } from 'ulid';

const pool = new Uint8Array(4_096);
let next = pool.length;

/** A uniform number in [0, 1) in steps of 1/256, as ulid's own PRNG gives. */
function pooledRandom(): number {
  if (next === pool.length) {
    getRandomValues(pool);
    next = 0;
  }
  return (pool[next++] as number) / 256;
}

/** A new ULID for the given time (default now). */
export const newUlid = (timeMs?: number): string => ulid(timeMs, pooledRandom);
