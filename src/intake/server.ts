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
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CityResponse, Reader } from 'maxmind';
import type { Logger } from '../ops/log.js';
import type { IncomingEvent } from '../queue/producer.js';
import type { Coalescer } from '../ops/coalescer.js';
import { isBot } from './device.js';
import { nativeEvent, ndjsonItems, type RawItem } from './events.js';
import { rejectReason, requestContext, type RequestContext } from './enrich.js';
import type { IntakeGate } from './gate.js';
import type { Identity, VisitorIds } from './identity.js';
import type { IntakeMetrics } from './metrics.js';
import { allowsOrigin, secretMatches, type Project, type Projects } from './projects.js';
import { clientIds, pageOrigin, parseTrackBody, TrackError, trackEvent } from './track.js';

export interface IntakeServerOptions {
  projects: Projects;
  identity: Identity;
  coalescer: Coalescer<IncomingEvent>;
  gate: IntakeGate;
  metrics: IntakeMetrics;
  log: Logger;
  maxFutureMs: number;
  trustProxy: boolean;
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

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v) || undefined;
};

/**
 * Which project a request is for, checked as DESIGN §7 says, and whether it is
 * a server-side caller (it presented the secret); throws 401 or 403.
 */
function authenticate(req: FastifyRequest, projects: Projects, protocol: 'track' | 'native'): { project: Project; serverSide: boolean } {
  const idHeader = protocol === 'track' ? 'openpanel-client-id' : header(req, 'x-client-id') ? 'x-client-id' : 'openpanel-client-id';
  const clientId = header(req, idHeader);
  if (!clientId) throw new HttpError(401, `${idHeader}: header required (the client id of a project)`);
  const project = projects.client(clientId);
  if (!project) throw new HttpError(401, `${idHeader}: unknown client id`);
  if (protocol === 'native') {
    const auth = header(req, 'authorization');
    const token = auth?.startsWith('Bearer ') ? auth.slice(7).trim() : undefined;
    if (!token) throw new HttpError(401, 'authorization: header required (Bearer <clientSecret>)');
    if (!secretMatches(project, token)) throw new HttpError(401, 'authorization: wrong client secret');
    return { project, serverSide: true };
  }
  const secret = header(req, 'openpanel-client-secret');
  if (secret !== undefined) {
    if (!secretMatches(project, secret)) throw new HttpError(401, 'openpanel-client-secret: wrong client secret');
    return { project, serverSide: true }; // no origin needed
  }
  const origin = header(req, 'origin');
  if (!origin) throw new HttpError(401, 'openpanel-client-secret: header required for a request without an Origin (server-side callers send the secret)');
  if (!allowsOrigin(project, origin)) throw new HttpError(403, `origin: ${origin.slice(0, 200)} is not allowed for this client id`);
  return { project, serverSide: false };
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
    bodyLimit: o.bodyLimit,
    // `__proto__` and `constructor` keys are data (DESIGN §1), stored as properties; nothing is merged into prototypes
    onProtoPoisoning: 'ignore',
    onConstructorPoisoning: 'ignore',
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });

  const jsonParser = app.getDefaultJsonParser('ignore', 'ignore');
  // navigator.sendBeacon and no-cors fetches send JSON as text/plain
  app.addContentTypeParser('text/plain', { parseAs: 'string' }, jsonParser);
  app.addContentTypeParser('application/x-ndjson', { parseAs: 'string' }, (_req, body, done) => done(null, { ndjson: String(body) }));

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
    o.log.error({ error: err.message.slice(0, 300), code: err.code }, 'request failed');
    return fail(reply, 500, 'server: internal error');
  });
  app.setNotFoundHandler((req, reply) => fail(reply, 404, `route: ${req.method} ${req.url.split('?')[0]?.slice(0, 100)} does not exist`));

  /** Backpressure and Redis state as the answer a request gets before any work. */
  const admit = (): void => {
    if (o.gate.state === 'backpressure') throw new HttpError(429, 'queue: the ready backlog is over the high watermark; retry later');
    if (o.gate.state === 'redis-down') throw new HttpError(503, 'redis: unavailable; retry later');
  };

  const unavailable = (err: unknown): HttpError => {
    o.log.warn({ error: (err as Error).message?.slice(0, 300) }, 'enqueue failed');
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

  app.post('/track', async (req, reply) => {
    const { project, serverSide } = authenticate(req, o.projects, 'track');
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
    // a server-side caller (it has the secret) sends its own user agent and IP, not a visitor's:
    // no bot check, no device, geo or IP fields, and no derived ids (it passes __deviceId / __sessionId)
    const ctx = serverSide ? { ...context(req), userAgent: '', ip: '', device: {}, geo: {} } : context(req);
    if (!serverSide && isBot(ctx.userAgent)) {
      o.metrics.events.inc({ outcome: 'bot' });
      return reply.code(202).send({ deviceId: '', sessionId: '' });
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
      : await resolveIds({ fingerprint, atMs: ctx.receivedAtMs, ...given });
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
