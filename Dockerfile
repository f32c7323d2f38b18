# registry-gateway: the TLS and basic-auth front of a private registry.
# Build: docker build -t registry-gateway .   Run: see docker-compose.yml and the README.

ARG NODE_IMAGE=node:26-slim

# Compile TypeScript (npm ci runs the build through the prepare script).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm ci --no-audit --no-fund

# Production dependencies only.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    GATEWAY_LISTEN=0.0.0.0:8443
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# certs/ and htpasswd are mounted, never baked in; certs/ is where a first start makes its own.
RUN mkdir -p /app/certs && chown node:node /app/certs
USER node
EXPOSE 8443
HEALTHCHECK --interval=10s --timeout=7s --start-period=15s --retries=3 \
  CMD ["node", "/app/dist/cli/main.js", "healthcheck"]
# The same V8 flag as the bin script's first line (see src/cli/main.ts).
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/cli/main.js"]
CMD ["serve"]
