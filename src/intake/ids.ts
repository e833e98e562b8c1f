/**
 * The pure parts of visitor identity (DESIGN §7): the daily device id and the
 * UTC days whose salts recognise a visitor (the client's address is proxy.ts's). The Redis parts
 * (salts, the session decision) are in identity.ts.
 *
 *   deviceId = sha256(userAgent, ip, origin, projectId, salt of the day)[0..32 hex]
 *
 * With a new random salt every UTC day, a device id cannot be linked to the
 * previous day's by anyone without the salts, and nothing about the visitor is
 * stored. The previous day's salt is still recognised, so a visit that crosses
 * midnight keeps its device id and its session.
 */
import { createHash } from 'node:crypto';

export interface Fingerprint {
  userAgent: string;
  ip: string;
  origin: string;
  projectId: string;
}

const DAY_MS = 86_400_000;

/** The UTC day of an instant, as YYYY-MM-DD. */
export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** Today's and yesterday's UTC day at `ms`. */
export const saltDays = (ms: number): [today: string, yesterday: string] => [utcDay(ms), utcDay(ms - DAY_MS)];

const digest = (parts: readonly string[]): string => createHash('sha256').update(parts.join('\u0000')).digest('hex');

/** The device id of a fingerprint under one day's salt: 32 hex characters. */
export const deviceIdFor = (f: Fingerprint, salt: string): string => digest([f.userAgent, f.ip, f.origin, f.projectId, salt]).slice(0, 32);

/** The 256-way bucket of a fingerprint, without salt: the hash tag of its session records. */
export const deviceBucket = (f: Fingerprint): string => digest([f.userAgent, f.ip, f.origin, f.projectId]).slice(0, 2);
