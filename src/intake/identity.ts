/**
 * Visitor identity in Redis: the daily salts and the session decision
 * (DESIGN §7). Stateless per process: every replica reads the same salts and
 * asks the same script, so replicas agree on a visitor's device and session.
 *
 * Salts: one random 32-byte value per UTC day, created by whichever replica
 * needs it first (SET NX) and expiring three days later; each process caches
 * the days it has read. Yesterday's salt is read too, so a visit that crosses
 * midnight keeps its device id.
 *
 * Sessions: the session decisions of concurrent requests share one script
 * call (a Coalescer, as the events of concurrent requests share one job):
 * one call per batch on a single Redis, one per hash tag of the batch under
 * Redis Cluster, where a script's keys must share a slot.
 */
import { randomBytes } from 'node:crypto';
import { newUlid as ulid } from '../event/ulid.js';
import type { IntakeKeys } from '../buffer/keys.js';
import { intakeSessions, type IntakeSessionAsk, type IntakeSessionReply } from '../buffer/scripts.js';
import { Coalescer, type CoalescerOptions } from '../ops/coalescer.js';
import type { RedisClient } from '../ops/redis.js';
import { Cluster } from 'ioredis';
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

/** How session decisions are batched when the caller does not say: the intake's batch defaults. */
const SESSION_BATCH: CoalescerOptions = { maxEvents: 500, windowMs: 5 };

/** The hash tag of a key ("{d17}" of "el:{d17}:dev:…"), which decides its cluster slot. */
const hashTag = (key: string): string => /\{[^}]*\}/.exec(key)?.[0] ?? key;

export class Identity {
  private readonly salts = new Map<string, string>();
  private readonly sessions: Coalescer<IntakeSessionAsk, IntakeSessionReply>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: IntakeKeys,
    private readonly sessionTimeoutMs: number,
    batch: CoalescerOptions = SESSION_BATCH,
  ) {
    this.sessions = new Coalescer((asks) => this.decide(asks), batch);
  }

  /** One script call for the batch, or under Redis Cluster one per hash tag (in parallel), answers in the asks' order. */
  private async decide(asks: IntakeSessionAsk[]): Promise<IntakeSessionReply[]> {
    const timing = { timeoutMs: this.sessionTimeoutMs, ttlMs: this.sessionTimeoutMs * 2 };
    if (!(this.redis instanceof Cluster)) return intakeSessions(this.redis, asks, timing);
    const groups = new Map<string, number[]>();
    asks.forEach((a, i) => {
      const tag = hashTag(a.today);
      groups.set(tag, [...(groups.get(tag) ?? []), i]);
    });
    const replies: IntakeSessionReply[] = new Array<IntakeSessionReply>(asks.length);
    await Promise.all(
      [...groups.values()].map(async (at) => {
        const got = await intakeSessions(this.redis, at.map((i) => asks[i] as IntakeSessionAsk), timing);
        at.forEach((i, j) => (replies[i] = got[j] as IntakeSessionReply));
      }),
    );
    return replies;
  }

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
    const [reply] = (await this.sessions.add([
      { today: this.keys.device(bucket, today), yesterday: this.keys.device(bucket, yesterday), nowMs: atMs, newSessionId: ulid() },
    ])) as [IntakeSessionReply];
    return { deviceId: reply.holder === 'today' ? today : yesterday, sessionId: reply.sessionId };
  }
}
