# Event Lens image, in two variants chosen with a build argument:
#   docker build -t event-lens .                          # for a ClickHouse server (no embedded engine)
#   docker build --build-arg ENGINE=embedded -t event-lens:embedded .   # with chDB (about 540 MB more)
# Stage 1 compiles TypeScript to dist/; the runtime stage has production
# dependencies only (no TypeScript, no tsx) and runs as the unprivileged `node`
# user, which owns the data directory /data.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS runtime
ARG ENGINE=server
WORKDIR /app
ENV NODE_ENV=production EVENT_LENS_DATA_DIR=/data METRICS_PORT=9464
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would try to compile again without TypeScript
RUN if [ "$ENGINE" = "embedded" ]; then npm ci --omit=dev --ignore-scripts --no-audit --no-fund; \
    else npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund; fi \
 && npm cache clean --force \
 && mkdir -p /data && chown node:node /data
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY lua ./lua
COPY migrations ./migrations
USER node
VOLUME ["/data"]
EXPOSE 9464 3000
# ready = Redis (and ClickHouse, for flushers) answer and the process is not shutting down
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.METRICS_PORT||9464)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/event-lens.js"]
CMD ["worker"]
