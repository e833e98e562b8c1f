/**
 * NDJSON input as raw lines. Lines stay bytes until they are parsed, so that
 * invalid UTF-8 is rejected with a reason (`decodeLine`) instead of being
 * turned into U+FFFD characters and stored.
 */
import { ValidationError } from '../errors.js';

/** Splits a byte stream into lines (LF or CRLF), without decoding them. */
export async function* readLineBytes(input: AsyncIterable<Buffer | string>): AsyncGenerator<Uint8Array> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    const buf = Buffer.isBuffer(chunk) ? (rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk) : Buffer.concat([rest, Buffer.from(chunk, 'utf8')]);
    let start = 0;
    for (let nl = buf.indexOf(10, start); nl !== -1; nl = buf.indexOf(10, start)) {
      const end = nl > start && buf[nl - 1] === 13 ? nl - 1 : nl;
      yield buf.subarray(start, end);
      start = nl + 1;
    }
    rest = Buffer.from(buf.subarray(start));
  }
  if (rest.length > 0) yield rest;
}

const strict = new TextDecoder('utf-8', { fatal: true });

/** A line as text; invalid UTF-8 is a ValidationError naming the rule. */
export function decodeLine(line: string | Uint8Array): string {
  if (typeof line === 'string') return line;
  try {
    return strict.decode(line);
  } catch {
    throw new ValidationError([{ field: 'event', rule: 'must be valid UTF-8' }]);
  }
}

/** True for an empty or whitespace-only line. */
export function isBlank(line: string | Uint8Array): boolean {
  if (typeof line === 'string') return line.trim() === '';
  return line.every((b) => b === 32 || b === 9 || b === 13);
}
