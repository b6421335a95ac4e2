# syntax=docker/dockerfile:1
#
# orch images. One multi-stage file, three targets:
#
#   docker build --target api-node    -t orch/api-node:dev .
#   docker build --target worker-node -t orch/worker-node:dev .
#   docker build --target worker-node-snakemake -t orch/worker-node:dev-snakemake .
#
# The build stage installs its packages with scripts/install-deps.sh, the same
# script the README's local setup and CI use; the runtime stages install only
# the shared libraries, with `scripts/install-deps.sh --runtime`.
#
# Not built on the project's CI machines (they have no Docker engine); see
# docs/deploy.md for what is and is not validated there.

ARG DEBIAN_BUILD_IMAGE=debian:bookworm
ARG DEBIAN_RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- build ----
FROM ${DEBIAN_BUILD_IMAGE} AS build
WORKDIR /src
# The installer alone first, so the package layer is cached across source
# changes.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh --build && rm -rf /var/lib/apt/lists/*
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY shared/ shared/
COPY api-node/ api-node/
COPY worker-node/ worker-node/
COPY migrations/ migrations/
# Swagger UI for GET /docs: the build runs `npm ci` on this lock file
# (the only network access besides apt; the api-node never fetches).
COPY tools/docs/package.json tools/docs/package-lock.json tools/docs/
ARG BUILD_JOBS=2
# ccache (installed by install-deps.sh) keeps its cache across builds.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DORCH_BUILD_TESTS=OFF \
 && cmake --build build -j "${BUILD_JOBS}" \
 && strip build/api-node/api-node build/worker-node/worker-node

# -------------------------------------------------------------- runtime ----
FROM ${DEBIAN_RUNTIME_IMAGE} AS runtime
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh --runtime \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
# A fixed uid/gid so Kubernetes runAsUser and volume ownership line up.
# /etc/fstab belongs to it so the entrypoint can write a per-container root
# UUID (CAF 0.17 node ids, see docker/entrypoint.sh); under a read-only root
# filesystem the Helm chart mounts a generated file there instead.
# /var/lib/orch/work is WORK_ROOT under compose and Helm; it exists in the
# image and belongs to orch, so a new named volume mounted there starts out
# owned by orch too.
RUN groupadd --system --gid 10001 orch \
 && useradd --system --uid 10001 --gid orch --home-dir /var/lib/orch \
      --create-home --shell /usr/sbin/nologin orch \
 && install -d -o orch -g orch -m 0755 /var/lib/orch/work \
 && touch /etc/fstab \
 && chown orch:orch /etc/fstab \
 && chmod 0644 /etc/fstab
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/orch-entrypoint
ENV LOG_LEVEL=info \
    LOG_FORMAT=json \
    WORK_ROOT=/var/lib/orch/work
# CAF reads caf-application.ini from the working directory: keep it empty.
WORKDIR /var/lib/orch
USER 10001:10001
STOPSIGNAL SIGTERM

# ------------------------------------------------------------- api-node ----
FROM runtime AS api-node
COPY --from=build /src/build/api-node/api-node /usr/local/bin/api-node
COPY migrations/ /usr/share/orch/migrations/
COPY --from=build /src/build/api-node/share/docs/ /usr/share/orch/docs/
ARG IMAGE_TAG=unknown
ENV HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8080 \
    SCHEDULER_HOST=0.0.0.0 \
    SCHEDULER_PORT=4242 \
    MIGRATIONS_DIR=/usr/share/orch/migrations \
    DOCS_DIR=/usr/share/orch/docs \
    IMAGE_TAG=${IMAGE_TAG}
EXPOSE 8080 4242
# Liveness only (/health): /ready depends on the database, and an unhealthy
# database should not get the api-node restarted. compose.yaml checks /ready.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${HTTP_PORT:-8080}/health" || exit 1
# Exec form, and the entrypoint execs the binary: api-node is PID 1 and gets
# SIGTERM itself, so it drains.
ENTRYPOINT ["/usr/local/bin/orch-entrypoint", "/usr/local/bin/api-node"]

# ---------------------------------------------------------- worker-node ----
FROM runtime AS worker-node
COPY --from=build /src/build/worker-node/worker-node /usr/local/bin/worker-node
ENV SCHEDULER_HOST=api-node \
    SCHEDULER_PORT=4242 \
    METRICS_HOST=0.0.0.0 \
    METRICS_PORT=9090
# A worker dials the api-node's scheduler; the only port it serves is its
# Prometheus GET /metrics (METRICS_PORT; "off" disables it). Its liveness is
# the scheduler's business (CAF heartbeats), so no HEALTHCHECK here.
EXPOSE 9090
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/orch-entrypoint", "/usr/local/bin/worker-node"]

# ------------------------------------------------ worker-node-snakemake ----
# The worker plus Debian's snakemake (and python3), so that it offers the
# snakemake executor besides mock and command; compose builds this one for
# its workers. Nextflow is not a Debian package and is in no image.
FROM worker-node AS worker-node-snakemake
USER root
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends snakemake \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
