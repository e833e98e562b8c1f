import { describe, expect, it } from 'vitest';
import { decodeLine, isBlank, readLineBytes } from '../../../src/replay/lines.js';

async function collect(chunks: (Buffer | string)[]): Promise<string[]> {
  const out: string[] = [];
  async function* source(): AsyncGenerator<Buffer | string> {
    yield* chunks;
  }
  for await (const line of readLineBytes(source())) out.push(decodeLine(line));
  return out;
}

describe('readLineBytes', () => {
  it('splits on LF and CRLF, across chunk boundaries, including inside a multi-byte character', async () => {
    const text = Buffer.from('{"a":"é"}\r\n{"b":2}\n\n{"c":"日本"}', 'utf8');
    // cut every possible way into two chunks: the lines must not change
    for (let cut = 0; cut <= text.length; cut += 1) {
      expect(await collect([text.subarray(0, cut), text.subarray(cut)])).toEqual(['{"a":"é"}', '{"b":2}', '', '{"c":"日本"}']);
    }
  });

  it('rejects invalid UTF-8 with a reason that names the rule, instead of replacing bytes with U+FFFD', () => {
    expect(() => decodeLine(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]))).toThrow(/event: must be valid UTF-8/);
    expect(() => decodeLine(Buffer.from([0xc3]))).toThrow(/valid UTF-8/);
    expect(decodeLine(Buffer.from('ok', 'utf8'))).toBe('ok');
  });

  it('treats whitespace-only lines as blank', () => {
    expect(isBlank(Buffer.from(' \t\r'))).toBe(true);
    expect(isBlank(Buffer.from(' x'))).toBe(false);
    expect(isBlank('  ')).toBe(true);
  });
});
