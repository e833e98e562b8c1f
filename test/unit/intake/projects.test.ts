import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.js';
import { allowsOrigin, parseProjects, secretMatches } from '../../../src/intake/projects.js';

const problems = (text: string): readonly string[] => {
  try {
    parseProjects(text, 'projects.json');
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
};

describe('parseProjects', () => {
  it('reads browser and server clients', () => {
    const projects = parseProjects(
      JSON.stringify([
        { projectId: 'shop', clientId: 'browser-client-1', origins: ['https://shop.example'] },
        { projectId: 'shop', clientId: 'server-client-1', clientSecret: 'a-long-enough-secret' },
      ]),
      'projects.json',
    );
    const browser = projects.client('browser-client-1');
    expect(browser && allowsOrigin(browser, 'https://shop.example')).toBe(true);
    expect(browser && allowsOrigin(browser, 'https://evil.example')).toBe(false);
    const server = projects.client('server-client-1');
    expect(server && secretMatches(server, 'a-long-enough-secret')).toBe(true);
    expect(server && secretMatches(server, 'a-long-enough-secreT')).toBe(false);
    expect(projects.anyAllows('https://shop.example')).toBe(true);
    expect(projects.client('nobody')).toBeUndefined();
  });

  it.each([
    ['{', 'EVENT_LENS_PROJECTS=projects.json: not valid JSON'],
    ['{}', 'EVENT_LENS_PROJECTS=projects.json: expected a JSON array of projects'],
    ['[{"clientId":"browser-client-1","origins":["https://a.example"]}]', 'entry 0 (clientId browser-client-1): projectId: must be a string of 1..64 characters'],
    ['[{"projectId":"p","clientId":"short","origins":["https://a.example"]}]', 'entry 0 (clientId short): clientId: must be a string of 8..128 characters'],
    ['[{"projectId":"p","clientId":"browser-client-1","origins":["https://a.example/path"]}]', 'entry 0 (clientId browser-client-1): origins.0: must be an origin such as https://shop.example'],
    ['[{"projectId":"p","clientId":"browser-client-1"}]', 'entry 0 (clientId browser-client-1): origins: a client without a clientSecret is a browser client and needs at least one origin'],
    ['[{"projectId":"p","clientId":"server-client-1","clientSecret":"short"}]', 'entry 0 (clientId server-client-1): clientSecret: must be a string of at least 16 characters'],
    ['[{"projectId":"p","clientId":"browser-client-1","origins":["*"],"secret":"x"}]', 'entry 0 (clientId browser-client-1): secret: unknown field'],
    ['[{"projectId":"p","clientId":"browser-client-1","origins":["*"]},{"projectId":"q","clientId":"browser-client-1","origins":["*"]}]', "entry 1 (clientId browser-client-1): clientId: the same as entry 0's"],
  ])('rejects %s naming the entry and the problem', (text, expected) => {
    expect(problems(text).join('\n')).toContain(expected);
  });
});
