import { describe, expect, it } from 'vitest';
import { backoffMs, classifyClickHouseError, ClickHouseWriteError, ConfigError, failureKind, ScriptError, ValidationError } from '../../../src/errors.js';
import { packBatches } from '../../../src/flush/flusher.js';

const chError = (type: string) => Object.assign(new Error(`ClickHouse says ${type}`), { type });

describe('classifyClickHouseError', () => {
  it.each(['CANNOT_PARSE_DATETIME', 'CANNOT_PARSE_TEXT', 'TYPE_MISMATCH', 'INCORRECT_DATA', 'CANNOT_PARSE_INPUT_ASSERTION_FAILED'])('takes %s for bad data: not retryable', (type) => {
    expect(classifyClickHouseError(chError(type)).retryable).toBe(false);
  });

  it.each(['UNKNOWN_TABLE', 'AUTHENTICATION_FAILED', 'READONLY', 'TABLE_IS_READ_ONLY', 'NOT_ENOUGH_SPACE', 'NO_SUCH_COLUMN_IN_TABLE', 'TOO_MANY_PARTS', 'MEMORY_LIMIT_EXCEEDED', 'SOMETHING_NEW'])(
    'takes %s for a server problem: retryable',
    (type) => {
      expect(classifyClickHouseError(chError(type)).retryable).toBe(true);
    },
  );

  it('retries a failure without a type (network, timeout) and names the type in the message', () => {
    expect(classifyClickHouseError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).retryable).toBe(true);
    expect(classifyClickHouseError(chError('UNKNOWN_TABLE')).message).toMatch(/^insert failed: .*\(UNKNOWN_TABLE\)$/);
  });
});

/** Whether trying the same call again later can succeed, as the worker decides it. */
const isRetryable = (err: unknown): boolean => failureKind(err) === 'transient';

describe('failureKind (the one table)', () => {
  it('retries network failures, Redis failover answers and retryable ClickHouse errors', () => {
    expect(isRetryable(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isRetryable(new Error('LOADING Redis is loading the dataset in memory'))).toBe(true);
    expect(isRetryable(new Error('READONLY You can\'t write against a read only replica.'))).toBe(true);
    expect(isRetryable(new ClickHouseWriteError('x', true))).toBe(true);
    expect(isRetryable(chError('AUTHENTICATION_FAILED'))).toBe(true);
    // a script's error is what its cause is
    expect(isRetryable(new ScriptError('ingest', 'failed', { cause: new Error('Connection is closed.') }))).toBe(true);
  });

  it('keeps Redis at maxmemory and errors that name the data apart from passing trouble', () => {
    expect(failureKind(new Error("OOM command not allowed when used memory > 'maxmemory'."))).toBe('out-of-memory');
    expect(isRetryable(new Error('OOM command not allowed when used memory > maxmemory'))).toBe(false);
    expect(failureKind(chError('CANNOT_PARSE_DATETIME'))).toBe('data');
    expect(failureKind(new ValidationError([{ field: 'a', rule: 'b' }]))).toBe('data');
    expect(failureKind(new ConfigError(['X=1: no']))).toBe('permanent');
  });

  it('does not retry bad input, bad config, data errors or unknown errors', () => {
    expect(isRetryable(new ValidationError([{ field: 'a', rule: 'b' }]))).toBe(false);
    expect(isRetryable(new ConfigError(['X=1: no']))).toBe(false);
    expect(isRetryable(new ClickHouseWriteError('x', false))).toBe(false);
    expect(isRetryable(new Error('something else'))).toBe(false);
    expect(isRetryable('a string')).toBe(false);
  });
});

describe('backoffMs', () => {
  it('is full jitter: uniform in [0, min(max, base * 2^attempt)]', () => {
    expect(backoffMs(0, 100, 30_000, () => 0.999)).toBe(99);
    expect(backoffMs(3, 100, 30_000, () => 0.5)).toBe(400);
    expect(backoffMs(20, 100, 30_000, () => 0.999)).toBe(29_970);
    expect(backoffMs(5, 100, 30_000, () => 0)).toBe(0);
  });

  it('spreads replicas that fail together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffMs(4)));
    expect(delays.size).toBeGreaterThan(40);
    for (const d of delays) expect(d).toBeLessThan(1_600);
  });
});

describe('packBatches', () => {
  const b = (n: number, size = 10) => ({ rows: Array.from({ length: n }, () => 'x'.repeat(size)) });

  it('packs batches in order within the row and byte limits', () => {
    const packs = packBatches([b(3), b(3), b(3), b(1)], 6, 1_000);
    expect(packs.map((p) => p.map((x) => x.rows.length))).toEqual([[3, 3], [3, 1]]);
    const bySize = packBatches([b(1, 600), b(1, 600), b(1, 100)], 100, 1_000);
    expect(bySize.map((p) => p.length)).toEqual([1, 2]);
  });

  it('never splits a batch larger than the limits, and packs nothing from nothing', () => {
    expect(packBatches([b(10), b(1)], 5, 1_000).map((p) => p.map((x) => x.rows.length))).toEqual([[10], [1]]);
    expect(packBatches([], 5, 1_000)).toEqual([]);
  });
});
