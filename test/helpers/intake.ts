/** The projects, origin and browser user agent the intake's integration tests share. */
import { parseProjects } from '../../src/intake/projects.js';

export const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
export const ORIGIN = 'https://shop.example';
export const SECRET = 'server-secret-0123456789';
/** One project with a browser client (allowed at ORIGIN) and a server client (with SECRET). */
export const PROJECTS = parseProjects(
  JSON.stringify([
    { projectId: 'shop', clientId: 'browser-client', origins: [ORIGIN] },
    { projectId: 'shop', clientId: 'server-client', clientSecret: SECRET },
  ]),
  'test',
);
