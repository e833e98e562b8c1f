/**
 * Visitor identity in Redis: the daily salts and the session decision
 * (DESIGN §7). Stateless per process: every replica reads the same salts and
 * asks the same script, so replicas agree on a visitor's device and session.
 *
 * Salts: one random 32-byte value per UTC day, created by whichever replica
 * needs it first (SET NX) and expiring three days later; each process caches
 * the days it has read. Yesterday's salt is read too, so a visit that crosses
 * midnight keeps its device id.
 */
import { randomBytes } from 'node:crypto';
import { newUlid as ulid } from '../event/ulid.js';
import type { IntakeKeys } from '../buffer/keys.js';
import { intakeSession } from '../buffer/scripts.js';
import type { RedisClient } from '../ops/redis.js';
import { deviceBucket, deviceIdFor, saltDays, type Fingerprint } from './ids.js';

const SALT_TTL_MS = 3 * 86_400_000;

export interface VisitorIds {
  deviceId: string;
  sessionId: string;
}

export interface ResolveInput {
  fingerprint: Fingerprint;
  /** The event's time (epoch ms): a session is live if its last event is less than the timeout before it. */
  atMs: number;
  /** The receive time (epoch ms): its UTC day and the one before name the salts, whatever day the event is from. */
  nowMs: number;
  /** Ids the client sent; they win over derived ones. */
  deviceId?: string | undefined;
  sessionId?: string | undefined;
}

export class Identity {
  private readonly salts = new Map<string, string>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: IntakeKeys,
    private readonly sessionTimeoutMs: number,
  ) {}

  private async salt(day: string): Promise<string> {
    const cached = this.salts.get(day);
    if (cached) return cached;
    const key = this.keys.salt(day);
    await this.redis.set(key, randomBytes(32).toString('hex'), 'PX', SALT_TTL_MS, 'NX');
    const salt = await this.redis.get(key);
    if (!salt) throw new Error(`salt ${key} vanished right after it was set`);
    if (this.salts.size > 4) this.salts.clear(); // only today and yesterday are ever asked for
    this.salts.set(day, salt);
    return salt;
  }

  /** The visitor's device and session ids for one event. */
  async resolve(input: ResolveInput): Promise<VisitorIds> {
    const { fingerprint: f, atMs } = input;
    let today: string;
    let yesterday: string;
    let bucket: string;
    if (input.deviceId) {
      today = yesterday = input.deviceId;
      bucket = deviceBucket({ ...f, userAgent: input.deviceId, ip: '', origin: '' });
    } else {
      // only today's and yesterday's salts ever exist: a client cannot make more with old or future events
      const [d0, d1] = saltDays(input.nowMs);
      const [s0, s1] = await Promise.all([this.salt(d0), this.salt(d1)]);
      today = deviceIdFor(f, s0);
      yesterday = deviceIdFor(f, s1);
      bucket = deviceBucket(f);
    }
    if (input.sessionId) return { deviceId: today, sessionId: input.sessionId };
    const reply = await intakeSession(
      this.redis,
      { today: this.keys.device(bucket, today), yesterday: this.keys.device(bucket, yesterday) },
      { nowMs: atMs, timeoutMs: this.sessionTimeoutMs, newSessionId: ulid(), ttlMs: this.sessionTimeoutMs * 2 },
    );
    return { deviceId: reply.holder === 'today' ? today : yesterday, sessionId: reply.sessionId };
  }
}
