/**
 * Every Redis key the buffer uses, in one place. A session belongs to shard
 * `fnv1a(projectId, sessionId) mod BUFFER_SHARDS`; every key of a shard carries
 * the hash tag `{<shard>}`, so one script call only touches one cluster slot and
 * shards spread over a Redis Cluster's masters. The tag comes first, so user
 * text later in a key (which may contain braces) never changes the slot.
 */

/** 32-bit FNV-1a over the UTF-16 code units of a string; stable across processes and versions. */
export function fnv1a(text: string, seed = 0x811c9dc5): number {
  let hash = seed;
  for (let i = 0; i < text.length; i += 1) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The shard of a session (or, for events without a session, of the event id). */
export function shardOf(projectId: string, sessionOrEventId: string, shards: number): number {
  return fnv1a(`${projectId}\u0000${sessionOrEventId}`) % shards;
}

/**
 * A session's name inside its shard: `<projectId length>:<projectId><sessionId>`.
 * The length prefix keeps it unambiguous whatever characters the ids contain.
 */
export function sessionMember(projectId: string, sessionId: string): string {
  return `${projectId.length}:${projectId}${sessionId}`;
}

/** Inverse of sessionMember. */
export function parseSessionMember(member: string): { projectId: string; sessionId: string } {
  const colon = member.indexOf(':');
  const length = Number(member.slice(0, colon));
  const rest = member.slice(colon + 1);
  return { projectId: rest.slice(0, length), sessionId: rest.slice(length) };
}

/** The two kinds of finished rows a shard holds, each in its own ready, batch and dead lists. */
export type RowStream = 'events' | 'sessions';

export interface ShardKeys {
  /** ZSET session member -> buffer time at which the sweeper should look at it. */
  due: string;
  /** LIST rows ready for ClickHouse. */
  ready: string;
  /** HASH counters. */
  stats: string;
  /** ZSET ids of sessionless events, for deduplication. */
  seen: string;
  /** LIST rows of the batch being inserted. */
  batch: string;
  /** HASH id, rows, bytes of that batch. */
  batchMeta: string;
  /** STRING owner of the shard's flush lease. */
  lease: string;
  /** LIST rows ClickHouse rejected, with its message. */
  dead: string;
  /** The same four keys for the sessions table's rows. */
  sessionsReady: string;
  sessionsBatch: string;
  sessionsBatchMeta: string;
  sessionsDead: string;
}

/** A session's three keys (lua/includes/state.lua). */
export interface SessionKeys {
  /** ZSET every known event, member "<id>\t<kind>", score createdAt. */
  z: string;
  /** ZSET the held rows, member -> buffer ms to emit it (+inf while not settled). */
  p: string;
  /** HASH the state, the session facts and the payloads of held rows. */
  h: string;
}

export class BufferKeys {
  constructor(readonly prefix: string) {}

  private tag(shard: number): string {
    return `${this.prefix}:{${shard}}`;
  }

  shard(shard: number): ShardKeys {
    const t = this.tag(shard);
    return {
      due: `${t}:due`,
      ready: `${t}:ready`,
      stats: `${t}:stats`,
      seen: `${t}:seen`,
      batch: `${t}:batch`,
      batchMeta: `${t}:batch:meta`,
      lease: `${t}:lease`,
      dead: `${t}:dead`,
      sessionsReady: `${t}:sessions:ready`,
      sessionsBatch: `${t}:sessions:batch`,
      sessionsBatchMeta: `${t}:sessions:batch:meta`,
      sessionsDead: `${t}:sessions:dead`,
    };
  }

  session(shard: number, member: string): SessionKeys {
    const t = this.tag(shard);
    return { z: `${t}:z:${member}`, p: `${t}:p:${member}`, h: `${t}:h:${member}` };
  }
}

/**
 * The ingestion server's keys (src/intake/), under the same prefix. A device's
 * session record carries a hash tag of 256 buckets taken from the unsalted
 * device fingerprint, so today's and yesterday's record of one visitor share a
 * slot (one script call reads both) while devices spread over a cluster; the
 * bucket reveals 8 bits, the key names nothing else that links two days.
 */
export class IntakeKeys {
  constructor(readonly prefix: string) {}

  /** STRING `<sessionId>\t<lastEventMs>` of a device id (lua/intakeSessions-0.lua). */
  device(bucket: string, deviceId: string): string {
    return `${this.prefix}:{d${bucket}}:dev:${deviceId}`;
  }

  /** STRING the random salt of one UTC day (YYYY-MM-DD). */
  salt(day: string): string {
    return `${this.prefix}:{salt}:${day}`;
  }
}
