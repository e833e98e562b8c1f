/**
 * Lints every Lua script's header against its file: the header is the
 * contract a reader (and src/buffer/scripts.ts) relies on, so it must say
 * exactly what the body uses.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ScriptCode } from '../../../src/buffer/scripts.js';

const LUA = path.resolve(import.meta.dirname, '../../../lua');
const files = [...readdirSync(LUA).filter((f) => f.endsWith('.lua')), ...readdirSync(path.join(LUA, 'bench')).map((f) => `bench/${f}`)];

function parts(file: string): { header: string; body: string } {
  const text = readFileSync(path.join(LUA, file), 'utf8');
  const start = text.indexOf('--[[');
  const end = text.indexOf(']]', start);
  if (start < 0 || end < 0) return { header: '', body: text };
  return { header: text.slice(start, end), body: text.slice(end + 2) };
}

/** The indices a header documents for KEYS or ARGV: single lines `ARGV[3]`, and ranges `ARGV[8..]`, `ARGV[7..6+S]`. */
function documented(header: string, table: 'KEYS' | 'ARGV'): { single: Set<number>; from: number } {
  const single = new Set<number>();
  let from = Infinity;
  for (const m of header.matchAll(new RegExp(`^\\s*${table}\\[(\\d+)(\\.\\.[^\\]]*)?\\]`, 'gm'))) {
    const i = Number(m[1]);
    if (m[2]) from = Math.min(from, i);
    else single.add(i);
  }
  // variable key layouts: KEYS[5+3(i-1)] documents every key from 5 on
  for (const m of header.matchAll(new RegExp(`^\\s*${table}\\[(\\d+)\\+`, 'gm'))) from = Math.min(from, Number(m[1]));
  return { single, from };
}

const covers = (doc: { single: Set<number>; from: number }, i: number): boolean => doc.single.has(i) || i >= doc.from;

describe.each(files)('lua/%s', (file) => {
  const { header, body } = parts(file);
  const fixedKeys = Number(/-(\d+)\.lua$/.exec(file)?.[1]);

  it('has a header that names the script, its keys, its arguments and its replies', () => {
    expect(header, 'a --[[ ... ]] header').not.toBe('');
    expect(header).toMatch(/Returns:/);
  });

  it('documents exactly the fixed key count of its file name, KEYS[1] to KEYS[n]', () => {
    const keys = documented(header, 'KEYS');
    expect([...keys.single].sort((a, b) => a - b)).toEqual(Array.from({ length: fixedKeys }, (_, i) => i + 1));
  });

  it('documents every KEYS[i] and ARGV[i] the body reads', () => {
    for (const table of ['KEYS', 'ARGV'] as const) {
      const doc = documented(header, table);
      const used = [...body.matchAll(new RegExp(`${table}\\[(\\d+)\\]`, 'g'))].map((m) => Number(m[1]));
      const missing = [...new Set(used)].filter((i) => !covers(doc, i));
      expect(missing, `${table} indices used but not documented`).toEqual([]);
    }
  });

  it('lists every code it returns, with ScriptCode names for the negative ones', () => {
    const returns = header.slice(header.indexOf('Returns:'));
    for (const m of body.matchAll(/return\s+(?:\{\s*)?(-?\d+)\b/g)) {
      const code = Number(m[1]);
      expect(returns, `return ${code}`).toMatch(new RegExp(`(^|[\\s{])${code}\\b`));
      if (code < 0) {
        const name = Object.entries(ScriptCode).find(([, v]) => v === code)?.[0];
        expect(name, `ScriptCode for ${code}`).toBeDefined();
        expect(returns).toContain(`${code} ${name}`);
      }
    }
  });
});

describe('lua/includes', () => {
  it.each(readdirSync(path.join(LUA, 'includes')))('%s reads no KEYS or ARGV: the including script passes what it needs', (file) => {
    const { body } = parts(`includes/${file}`);
    expect(body).not.toMatch(/\b(KEYS|ARGV)\[/);
  });
});
