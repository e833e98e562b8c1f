/**
 * The projects the ingestion server accepts, from the JSON file named by
 * EVENT_LENS_PROJECTS:
 *
 *   [{ "projectId": "shop", "clientId": "<uuid>", "clientSecret": "<optional>",
 *      "origins": ["https://shop.example"] }]
 *
 * A client with a secret is a server-side caller: its requests carry the
 * secret and need no browser origin. Browser requests (no secret) must come
 * from one of `origins` (exact scheme://host[:port], or "*" for any). A bad
 * file stops `serve` at start with the entry and the problem.
 */
import { readFileSync } from 'node:fs';
import { timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { ConfigError } from '../errors.js';

const origin = z.string().refine((o) => o === '*' || /^https?:\/\/[^/\s]+$/.test(o), {
  error: 'must be an origin such as https://shop.example (scheme and host, no path), or "*"',
});

const projectSchema = z.strictObject(
  {
    projectId: z.string({ error: 'must be a string of 1..64 characters' }).min(1, { error: 'must be a string of 1..64 characters' }).max(64, { error: 'must be a string of 1..64 characters' }),
    clientId: z.string({ error: 'must be a string of 8..128 characters' }).min(8, { error: 'must be a string of 8..128 characters' }).max(128, { error: 'must be a string of 8..128 characters' }),
    clientSecret: z.string({ error: 'must be a string of at least 16 characters' }).min(16, { error: 'must be a string of at least 16 characters' }).optional(),
    origins: z.array(origin, { error: 'must be a list of origins' }).default([]),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? 'unknown field' : 'must be an object') },
);

export type Project = z.infer<typeof projectSchema>;

export class Projects {
  private readonly byClient: Map<string, Project>;

  constructor(projects: readonly Project[]) {
    this.byClient = new Map(projects.map((p) => [p.clientId, p]));
  }

  get size(): number {
    return this.byClient.size;
  }

  client(clientId: string | undefined): Project | undefined {
    return clientId === undefined ? undefined : this.byClient.get(clientId);
  }

  /** Any project allows this browser origin: CORS preflights carry no client id, so they are answered for these. */
  anyAllows(requestOrigin: string): boolean {
    for (const p of this.byClient.values()) if (allowsOrigin(p, requestOrigin)) return true;
    return false;
  }
}

export const allowsOrigin = (p: Project, requestOrigin: string): boolean => p.origins.includes('*') || p.origins.includes(requestOrigin);

/** Compares a presented secret with the project's in constant time. */
export function secretMatches(p: Project, presented: string): boolean {
  if (!p.clientSecret) return false;
  const a = Buffer.from(p.clientSecret);
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Parses the projects file's text; every problem names the entry (by index and client id) and the field. */
export function parseProjects(text: string, source: string): Projects {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError([`EVENT_LENS_PROJECTS=${source}: not valid JSON (${(err as Error).message})`]);
  }
  if (!Array.isArray(raw)) throw new ConfigError([`EVENT_LENS_PROJECTS=${source}: expected a JSON array of projects`]);
  const problems: string[] = [];
  const projects: Project[] = [];
  const seen = new Map<string, number>();
  raw.forEach((entry, index) => {
    const label = `entry ${index}${typeof entry?.clientId === 'string' ? ` (clientId ${entry.clientId})` : ''}`;
    const parsed = projectSchema.safeParse(entry);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const field = issue.path.length > 0 ? issue.path.join('.') : (issue.code === 'unrecognized_keys' ? issue.keys.join(', ') : 'entry');
        problems.push(`EVENT_LENS_PROJECTS=${source}: ${label}: ${field}: ${issue.message}`);
      }
      return;
    }
    const p = parsed.data;
    if (!p.clientSecret && p.origins.length === 0) {
      problems.push(`EVENT_LENS_PROJECTS=${source}: ${label}: origins: a client without a clientSecret is a browser client and needs at least one origin`);
    }
    const earlier = seen.get(p.clientId);
    if (earlier !== undefined) problems.push(`EVENT_LENS_PROJECTS=${source}: ${label}: clientId: the same as entry ${earlier}'s`);
    seen.set(p.clientId, index);
    projects.push(p);
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return new Projects(projects);
}

/** Reads and parses the projects file. */
export function loadProjects(file: string | undefined): Projects {
  if (!file) throw new ConfigError(['EVENT_LENS_PROJECTS: not set; expected the path of a JSON file of projects (see the README, "Sending events")']);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError([`EVENT_LENS_PROJECTS=${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  return parseProjects(text, file);
}
