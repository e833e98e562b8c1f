/**
 * The documentation a newcomer reads points at things that exist: every
 * relative link in README.md, CHANGELOG.md and docs/ names an existing file
 * (and, with an anchor, one of its headings), and every `npx event-lens …`
 * command they name is a command of the CLI (and a subcommand of it, where it
 * has subcommands).
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../../..');
const DOCS = ['README.md', 'CHANGELOG.md', ...readdirSync(path.join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (file: string): string => readFileSync(path.join(ROOT, file), 'utf8');

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens. */
export const slug = (heading: string): string =>
  heading
    .trim()
    .toLowerCase()
    .replace(/`/g, '')
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');

const headings = (file: string): Set<string> =>
  new Set([...text(file).replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1] as string)));

/** The CLI's commands, from its registrations: the first `.command('x')` of each src/cli file is x, the later ones its subcommands. */
function commands(): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const file of readdirSync(path.join(ROOT, 'src/cli')).filter((f) => f.endsWith('.ts'))) {
    const names = [...readFileSync(path.join(ROOT, 'src/cli', file), 'utf8').matchAll(/\.command\('([\w-]+)'\)/g)].map((m) => m[1] as string);
    if (names.length > 0) out.set(names[0] as string, new Set(names.slice(1)));
  }
  return out;
}

describe.each(DOCS)('%s', (file) => {
  const body = text(file);

  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const m of body.replace(/```[\s\S]*?```/g, '').matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1] as string;
      if (/^[a-z]+:/i.test(target)) continue;
      const [where, anchor] = target.split('#') as [string, string | undefined];
      const resolved = where === '' ? file : path.posix.normalize(path.posix.join(path.posix.dirname(file), where));
      if (!existsSync(path.join(ROOT, resolved))) broken.push(`${target}: no file ${resolved}`);
      else if (anchor && resolved.endsWith('.md') && !headings(resolved).has(anchor)) broken.push(`${target}: no heading #${anchor} in ${resolved}`);
    }
    expect(broken).toEqual([]);
  });

  it('names only commands the CLI has', () => {
    const known = commands();
    const unknown: string[] = [];
    for (const m of body.matchAll(/npx event-lens ([a-z][\w-]*)(?: ([a-z][\w-]*))?/g)) {
      const [command, sub] = [m[1] as string, m[2]];
      const subs = known.get(command);
      if (!subs) unknown.push(m[0]);
      else if (subs.size > 0 && sub !== undefined && !subs.has(sub)) unknown.push(m[0]);
    }
    expect(unknown).toEqual([]);
  });
});

describe('README.md', () => {
  it('is at most 400 lines, with the two commands and sending events on its first screenful', () => {
    const lines = text('README.md').split('\n');
    expect(lines.length).toBeLessThanOrEqual(400);
    const first = lines.slice(0, 80).join('\n');
    expect(first).toContain('npm run demo');
    expect(first).toContain('npm test');
    expect(text('README.md').indexOf('## Sending events')).toBeLessThan(text('README.md').indexOf('## Configuration'));
  });
});
