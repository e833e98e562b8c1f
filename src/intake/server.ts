/**
 * The ingestion server's wiring (`event-lens serve`, DESIGN §7): fastify,
 * CORS, authentication per project, the two protocols, health, readiness and
 * metrics. Route handlers only parse, call the pure derivations
 * (enrich/track/events), resolve ids (identity) and enqueue (coalescer).
 *
 * Every answer a client can get is in the README's table ("Sending events").
 * Errors are `{ "error": "<field>: <rule>" }`; a 2xx means the events are in
 * the queue. Nothing from a rejected request is enqueued.
 *
 * Why fastify: the most used Node framework built for throughput (schema-less
 * JSON parsing with prototype-poisoning control, body limits, 503 on closing,
 * graceful close that waits for in-flight requests) with a maintained CORS
 * plugin; MIT.
 */
import { isUtf8 } from 'node:buffer';
import type { Socket } from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CityResponse, Reader } from 'maxmind';
import { EventLensError } from '../errors.js';
import type { Logger } from '../ops/log.js';
import type { IncomingEvent } from '../queue/producer.js';
import type { Coalescer } from '../ops/coalescer.js';
import { BOT_REASONS_PROPERTY, botVerdict, isSecureRequest } from './bots.js';
import { isBot, isProgramAgent, isServerAgent, withOverrides } from './device.js';
import { geoFromDatabase } from './geo.js';
import { nativeEvent, ndjsonItems, type RawItem } from './events.js';
import { rejectReason, requestContext, type RequestContext } from './enrich.js';
import type { IntakeGate } from './gate.js';
import type { Identity, VisitorIds } from './identity.js';
import type { IntakeMetrics } from './metrics.js';
import { allowsOrigin, secretMatches, type Project, type Projects } from './projects.js';
import { plainIp, trustsProxies, type ProxyTrust } from './proxy.js';
import { clientIds, pageOrigin, parseTrackBody, TrackError, trackEvent } from './track.js';
import { hostedTracker } from './tracker.js';

export interface IntakeServerOptions {
  projects: Projects;
  identity: Identity;
  coalescer: Coalescer<IncomingEvent>;
  gate: IntakeGate;
  metrics: IntakeMetrics;
  log: Logger;
  maxFutureMs: number;
  trustProxy: ProxyTrust;
  geoip?: Pick<Reader<CityResponse>, 'get'> | undefined;
  /** Largest body read, in bytes (413 above). */
  bodyLimit: number;
  /** Most events in one /v1/events request (413 above). */
  maxRequestEvents: number;
  /** Adds `POST /bench/noop` (parse and answer, nothing else): the ceiling `bench http` measures against. */
  benchRoutes?: boolean;
}

/** Seconds a client should wait before retrying a 429 or 503. */
export const RETRY_AFTER_S = 5;

/** An answer other than a success: its status and `<field>: <rule>` message, the body a client gets. */
class HttpError extends EventLensError {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(`HTTP_${status}`, message);
  }

  /** What fastify reads on errors raised while a body is read. */
  get statusCode(): number {
    return this.status;
  }
}

/** The most a request body is read before the connection is given up (a body over the limit is read and dropped up to it). */
const drainCap = (limit: number): number => Math.max(16 * limit, 16 * 1_048_576);

/**
 * The body stream with the limit applied: past `limit` bytes the rest is read
 * and dropped, and the stream fails with a 413 once the client has sent it
 * all, so the client, which may write its whole body before it reads, gets the
 * answer instead of a reset. Past `drainCap` the connection is given up.
 */
function limitBody(source: Readable, limit: number): Readable {
  const out = new PassThrough();
  // fastify listens once it reads the body; before that (a request it will not parse), an error must not crash
  out.on('error', () => {});
  let seen = 0;
  source.on('data', (chunk: Buffer) => {
    seen += chunk.length;
    if (seen > drainCap(limit)) {
      source.destroy();
      out.destroy(new HttpError(413, `body: must be at most ${limit} bytes`));
    } else if (seen <= limit) {
      out.write(chunk);
    }
  });
  source.on('end', () => (seen > limit ? out.destroy(new HttpError(413, `body: must be at most ${limit} bytes`)) : out.end()));
  source.on('error', (err) => out.destroy(err));
  return out;
}

/** A request body as text, refused when it is not valid UTF-8 (it would be stored with U+FFFD in place of the bytes). */
function utf8(body: Buffer): string {
  if (!isUtf8(body)) throw new HttpError(400, 'body: must be valid UTF-8');
  return body.toString('utf8');
}

/** Answers a request Node's HTTP parser refused (oversized headers, broken framing) with a JSON error, as every other answer. */
function clientError(err: Error & { code?: string }, socket: Socket): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const [status, reason, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', 'headers: must be at most 16 KiB in all']
      : [400, 'Bad Request', `request: malformed HTTP (${err.code ?? err.message})`];
  const body = JSON.stringify({ error: message });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) || undefined;
};

/**
 * Which project a request is for, checked as DESIGN §7 says, and whether the
 * caller presented the secret (a backend: it needs no origin, and may forward
 * its visitor's address); throws 401 or 403.
 */
function authenticate(req: FastifyRequest, projects: Projects, protocol: 'track' | 'native'): { project: Project; withSecret: boolean } {
  const idHeader = protocol === 'track' ? 'openpanel-client-id' : header(req, 'x-client-id') ? 'x-client-id' : 'openpanel-client-id';
  const clientId = header(req, idHeader);
  if (!clientId) throw new HttpError(401, `${idHeader}: header required (the client id of a project)`);
  const project = projects.client(clientId);
  if (!project) throw new HttpError(401, `${idHeader}: unknown client id`);
  if (protocol === 'native') {
    const auth = header(req, 'authorization');
    // the scheme is case-insensitive (RFC 9110 §11.1)
    const token = auth && /^bearer\s/i.test(auth) ? auth.slice(7).trim() : undefined;
    if (!token) throw new HttpError(401, 'authorization: header required (Bearer <clientSecret>)');
    if (!secretMatches(project, token)) throw new HttpError(401, 'authorization: wrong client secret');
    return { project, withSecret: true };
  }
  const secret = header(req, 'openpanel-client-secret');
  if (secret !== undefined) {
    if (!secretMatches(project, secret)) throw new HttpError(401, 'openpanel-client-secret: wrong client secret');
    return { project, withSecret: true }; // no origin needed
  }
  const origin = header(req, 'origin');
  if (!origin) throw new HttpError(401, 'openpanel-client-secret: header required for a request without an Origin (server-side callers send the secret)');
  if (!allowsOrigin(project, origin)) throw new HttpError(403, `origin: ${origin.slice(0, 200)} is not allowed for this client id`);
  return { project, withSecret: false };
}

export interface IntakeServer {
  app: FastifyInstance;
  /**
   * Stops accepting, finishes in-flight requests and closes every connection:
   * answers carry `Connection: close` from now on and idle kept-alive sockets
   * are closed as they become idle (otherwise a client's keep-alive would hold
   * the close for its whole timeout).
   */
  close(): Promise<void>;
}

export function buildIntakeServer(o: IntakeServerOptions): IntakeServer {
  const closing = { value: false };
  const app = Fastify({
    logger: false,
    // the limit itself is limitBody's, which reads what is over it (fastify's own check answers before reading, and a client still writing gets a reset)
    bodyLimit: drainCap(o.bodyLimit),
    // a request without Host gets a JSON answer from the hook below instead of Node's empty 400
    http: { requireHostHeader: false },
    clientErrorHandler: clientError,
    // `__proto__` and `constructor` keys are data (DESIGN §1), stored as properties; nothing is merged into prototypes
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  const jsonParser = app.getDefaultJsonParser('ignore', 'ignore');
  const json = (req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void): void => {
    try {
      jsonParser(req, utf8(body), done);
    } catch (err) {
      done(err as Error);
    }
  };
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, json);
  // navigator.sendBeacon and no-cors fetches send JSON as text/plain
  app.addContentTypeParser('text/plain', { parseAs: 'buffer' }, json);
  app.addContentTypeParser('application/x-ndjson', { parseAs: 'buffer' }, (_req, body: Buffer, done) => {
    try {
      done(null, { ndjson: utf8(body) });
    } catch (err) {
      done(err as Error);
    }
  });
  app.addHook('preParsing', async (_req, _reply, payload) => limitBody(payload, o.bodyLimit));

  // before CORS: a preflight from an origin no project allows is refused by name, not left to a 404
  app.addHook('onRequest', async (req, reply) => {
    if (req.raw.httpVersion === '1.1' && req.headers.host === undefined) {
      void reply.header('connection', 'close');
      throw new HttpError(400, 'host: header required (HTTP/1.1)');
    }
    const origin = header(req, 'origin');
    if (req.method === 'OPTIONS' && origin !== undefined && !o.projects.anyAllows(origin)) {
      throw new HttpError(403, `origin: ${origin.slice(0, 200)} is not allowed for any client id`);
    }
  });

  void app.register(cors, {
    // preflights carry no client id: allow an origin any project allows; the request itself is checked per project
    origin: (origin, cb) => cb(null, origin === undefined || o.projects.anyAllows(origin)),
    methods: ['POST', 'GET'],
    allowedHeaders: ['content-type', 'openpanel-client-id', 'openpanel-client-secret', 'openpanel-sdk-name', 'openpanel-sdk-version', 'authorization', 'x-client-id'],
    maxAge: 600,
  });

  // once closing, every answer ends its connection, so a kept-alive client cannot hold the close open
  app.addHook('onSend', async (_req, reply) => {
    if (closing.value) void reply.header('connection', 'close');
  });
  app.addHook('onResponse', async (req, reply) => {
    o.metrics.requests.inc({ route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, _req, reply) => {
    if (err instanceof HttpError) return fail(reply, err.status, err.message);
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return fail(reply, 413, `body: must be at most ${o.bodyLimit} bytes`);
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return fail(reply, 415, 'content-type: must be application/json, text/plain (JSON) or application/x-ndjson');
    if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY') return fail(reply, 400, 'body: must not be empty');
    if (err.statusCode === 400) return fail(reply, 400, `body: must be valid JSON (${err.message.slice(0, 200)})`);
    o.log.error({ err, code: err.code }, 'request failed');
    return fail(reply, 500, 'server: internal error');
  });
  app.setNotFoundHandler((req, reply) => fail(reply, 404, `route: ${req.method} ${req.url.split('?')[0]?.slice(0, 100)} does not exist`));

  /** Backpressure and Redis state as the answer a request gets before any work. */
  const admit = (): void => {
    if (o.gate.state === 'backpressure') throw new HttpError(429, 'queue: the ready backlog is over the high watermark; retry later');
    if (o.gate.state === 'redis-down') throw new HttpError(503, 'redis: unavailable; retry later');
  };

  const unavailable = (err: unknown): HttpError => {
    o.log.warn({ err }, 'enqueue failed');
    return new HttpError(503, 'redis: the events could not be queued; retry later');
  };

  const enqueue = async (events: IncomingEvent[]): Promise<void> => {
    const started = performance.now();
    try {
      await o.coalescer.add(events);
    } catch (err) {
      o.metrics.events.inc({ outcome: 'unavailable' }, events.length);
      throw unavailable(err);
    }
    o.metrics.enqueueSeconds.observe((performance.now() - started) / 1000);
    o.metrics.events.inc({ outcome: 'accepted' }, events.length);
  };

  const resolveIds = async (input: Parameters<Identity['resolve']>[0]): Promise<VisitorIds> => {
    try {
      return await o.identity.resolve(input);
    } catch (err) {
      throw unavailable(err);
    }
  };

  const context = (req: FastifyRequest): RequestContext => requestContext(req.socket.remoteAddress, req.headers, { trustProxy: o.trustProxy, geoip: o.geoip });

  /**
   * The request's context with what a caller says of its visitor: device
   * overrides (`__os`, …), and from a caller with the secret the visitor's
   * address (`__ip`, when it is one), whose geo then comes from the GeoIP
   * database (the proxy's geo headers describe the backend, not the visitor).
   */
  const visitorContext = (ctx: RequestContext, properties: Record<string, unknown>, withSecret: boolean): RequestContext => {
    const visitor: RequestContext = { ...ctx, device: withOverrides(ctx.device, properties) };
    const ip = withSecret && typeof properties.__ip === 'string' ? plainIp(properties.__ip) : undefined;
    if (ip) {
      visitor.ip = ip;
      visitor.geo = o.geoip ? geoFromDatabase(o.geoip, ip) : {};
    }
    return visitor;
  };

  app.post('/track', async (req, reply) => {
    const { project, withSecret } = authenticate(req, o.projects, 'track');
    admit();
    let body;
    try {
      body = parseTrackBody(req.body);
    } catch (err) {
      if (err instanceof TrackError) {
        o.metrics.events.inc({ outcome: 'rejected' });
        throw new HttpError(400, err.message);
      }
      throw err;
    }
    const ctx = visitorContext(context(req), body.properties, withSecret);
    // a caller with the secret whose user agent is a server's (OpenPanel's rule, device.ts) speaks for itself:
    // no bot check (a program's own user agent, such as node or curl, is not a crawler it forwards), no device,
    // geo or IP fields, and no derived ids (it may pass __deviceId / __sessionId); one that forwards a
    // visitor's user agent (and __ip) gets what that visitor's browser would get, bot check included
    const serverSide = withSecret && (isProgramAgent(ctx.userAgent) || (!isBot(ctx.userAgent) && isServerAgent(ctx.userAgent)));
    if (serverSide) Object.assign(ctx, { userAgent: '', ip: '', device: {}, geo: {} });
    else {
      // a browser's request, or one a backend forwards: dropped or flagged by its bot signals (bots.ts)
      const secure = !withSecret && isSecureRequest(req.headers, plainIp(req.socket.remoteAddress) ?? '', trustsProxies(o.trustProxy));
      const verdict = botVerdict(ctx.userAgent, req.headers, body.properties, secure);
      if (verdict.drop) {
        o.metrics.botSignals.inc({ reason: verdict.drop, action: 'drop' });
        o.metrics.events.inc({ outcome: 'bot' });
        return reply.code(202).send({ deviceId: '', sessionId: '' });
      }
      for (const reason of verdict.flags) o.metrics.botSignals.inc({ reason, action: 'flag' });
      if (verdict.flags.length > 0) body.properties[BOT_REASONS_PROPERTY] = verdict.flags.join(',');
    }
    const given = clientIds(body);
    // checked before the ids are resolved, so a rejected request changes nothing in Redis
    const draft = trackEvent(body, project.projectId, ctx, { deviceId: given.deviceId ?? 'pending', sessionId: given.sessionId ?? 'pending' }, o.maxFutureMs);
    const reason = rejectReason(draft, ctx.receivedAtMs, o.maxFutureMs);
    if (reason) {
      o.metrics.events.inc({ outcome: 'rejected' });
      throw new HttpError(400, reason);
    }
    const fingerprint = { userAgent: ctx.userAgent, ip: ctx.ip, origin: ctx.origin || pageOrigin(body) || '', projectId: project.projectId };
    const ids = serverSide
      ? { deviceId: given.deviceId ?? '', sessionId: given.sessionId ?? '' }
      : await resolveIds({ fingerprint, atMs: ctx.receivedAtMs, nowMs: ctx.receivedAtMs, ...given });
    await enqueue([trackEvent(body, project.projectId, ctx, ids, o.maxFutureMs)]);
    return reply.code(200).send(ids);
  });

  app.post('/v1/events', async (req, reply) => {
    const { project } = authenticate(req, o.projects, 'native');
    admit();
    const body = req.body as unknown;
    let items: RawItem[];
    if (Array.isArray(body)) items = body.map((value) => ({ value }));
    else if (body !== null && typeof body === 'object' && 'ndjson' in body) items = ndjsonItems(String((body as { ndjson: string }).ndjson));
    else throw new HttpError(400, 'body: must be a JSON array of events, or NDJSON with content-type application/x-ndjson');
    if (items.length > o.maxRequestEvents) throw new HttpError(413, `body: must hold at most ${o.maxRequestEvents} events (it has ${items.length})`);

    const receivedAtMs = Date.now();
    const rejected: { index: number; reason: string }[] = [];
    const candidates: { index: number; event: IncomingEvent }[] = [];
    items.forEach((item, index) => {
      const r = nativeEvent(item, project.projectId);
      if ('error' in r) rejected.push({ index, reason: r.error });
      else candidates.push({ index, event: r.event });
    });
    const accepted: IncomingEvent[] = [];
    await Promise.all(
      candidates.map(async ({ index, event }) => {
        // ids the event lacks and the server can derive (only once the event is otherwise valid)
        const first = rejectReason(event, receivedAtMs, o.maxFutureMs);
        if (first) return rejected.push({ index, reason: first });
        if (!event.sessionId && (event.deviceId || event.userAgent || event.ip)) {
          const ids = await resolveIds({
            fingerprint: { userAgent: event.userAgent ?? '', ip: event.ip ?? '', origin: event.origin ?? '', projectId: project.projectId },
            atMs: typeof event.createdAt === 'number' ? event.createdAt : Date.parse(event.createdAt),
            // salts are today's and yesterday's at the receive time, whatever day the event is from
            nowMs: receivedAtMs,
            deviceId: event.deviceId,
          });
          event.deviceId = ids.deviceId;
          event.sessionId = ids.sessionId;
        }
        return accepted.push(event);
      }),
    );
    rejected.sort((a, b) => a.index - b.index);
    o.metrics.events.inc({ outcome: 'rejected' }, rejected.length);
    await enqueue(accepted);
    return reply.code(200).send({ accepted: accepted.length, rejected });
  });

  // the browser tracker: one script tag on a site, nothing else (tracker.ts)
  app.get('/op1.js', async (req, reply) => {
    const script = hostedTracker();
    void reply.header('etag', script.etag).header('cache-control', script.cacheControl).header('access-control-allow-origin', '*');
    if (req.headers['if-none-match'] === script.etag) return reply.code(304).send();
    return reply.type('text/javascript; charset=utf-8').send(script.body);
  });

  app.get('/healthz', async () => 'ok\n');
  app.get('/readyz', async (_req, reply) => {
    const state = o.gate.state;
    return reply.code(state === 'open' ? 200 : 503).send(state === 'open' ? 'ready\n' : `not ready: ${state}\n`);
  });
  app.get('/metrics', async (_req, reply) => reply.type(o.metrics.registry.contentType).send(await o.metrics.registry.metrics()));

  if (o.benchRoutes) app.post('/bench/noop', async (req) => ({ ok: req.body !== undefined }));
  return {
    app,
    close: async () => {
      closing.value = true;
      const sweeper = setInterval(() => app.server.closeIdleConnections(), 50);
      try {
        await app.close();
      } finally {
        clearInterval(sweeper);
      }
    },
  };
}

function fail(reply: FastifyReply, status: number, message: string): FastifyReply {
  if (status === 429 || status === 503) void reply.header('retry-after', String(RETRY_AFTER_S));
  return reply.code(status).send({ error: message });
}
