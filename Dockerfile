# The Event Lens worker image. The TypeScript sources run through tsx, so the
# image is the repository plus its production dependencies.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY lua ./lua
COPY migrations ./migrations
USER node
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD node -e "fetch('http://127.0.0.1:9464/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/event-lens.js"]
CMD ["worker"]
