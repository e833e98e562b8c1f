import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ClickHouseWriteError, failureKind, isOutOfMemory } from '../../../src/errors.js';
import { faultsFromEnv } from '../../../src/ops/faults.js';

describe('faultsFromEnv', () => {
  it('is off unless EVENT_LENS_FAULTS is set, and names a bad entry', () => {
    expect(faultsFromEnv({})).toBeUndefined();
    expect(() => faultsFromEnv({ EVENT_LENS_FAULTS: 'crash-after-insert:x' })).toThrow(/"crash-after-insert:x" is not crash-after-insert:N/);
  });

  it('clickhouse-down-file fails inserts with a retryable error while the file exists', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faults-'));
    const file = path.join(dir, 'down');
    const faults = faultsFromEnv({ EVENT_LENS_FAULTS: `clickhouse-down-file:${file}` });
    expect(() => faults?.beforeInsert()).not.toThrow();
    writeFileSync(file, '');
    let error: unknown;
    try {
      faults?.beforeInsert();
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ClickHouseWriteError);
    expect((error as ClickHouseWriteError).retryable).toBe(true);
    rmSync(dir, { recursive: true, force: true });
  });

  it('clickhouse-systemic-file fails inserts with an error the classifier retries', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faults-'));
    const file = path.join(dir, 'systemic');
    writeFileSync(file, '');
    const faults = faultsFromEnv({ EVENT_LENS_FAULTS: `clickhouse-systemic-file:${file}` });
    const error = (() => {
      try {
        faults?.beforeInsert();
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(ClickHouseWriteError);
    expect((error as ClickHouseWriteError).retryable).toBe(true);
    expect((error as Error).message).toContain('AUTHENTICATION_FAILED');
    rmSync(dir, { recursive: true, force: true });
  });

  it('corrupt-ids-file breaks the createdAt of the listed rows in flight only while the file exists', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'faults-'));
    const file = path.join(dir, 'ids');
    const faults = faultsFromEnv({ EVENT_LENS_FAULTS: `corrupt-ids-file:${file}` });
    const rows = ['{"id":"a","createdAt":"2026-10-01 10:00:00.000"}', '{"id":"b","createdAt":"2026-10-01 10:00:00.000"}'];
    expect(faults?.outgoing(rows)).toEqual(rows);
    writeFileSync(file, 'b\n');
    expect(faults?.outgoing(rows)).toEqual([rows[0], '{"id":"b","createdAt":"corrupted by the fault hook"}']);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('Redis error classes', () => {
  it('tells OOM and passing connection trouble from other errors', () => {
    expect(isOutOfMemory(new Error("script ingest: OOM command not allowed when used memory > 'maxmemory'."))).toBe(true);
    expect(failureKind(new Error('script ingest: Command aborted due to connection close'))).toBe('transient');
    expect(failureKind(new Error('Connection is closed.'))).toBe('transient');
    expect(failureKind(new Error('LOADING Redis is loading the dataset in memory'))).toBe('transient');
    expect(failureKind(new Error('script ingest: ERR wrong number of arguments'))).toBe('permanent');
    expect(isOutOfMemory(new Error('WRONGPASS invalid username-password pair'))).toBe(false);
  });
});
