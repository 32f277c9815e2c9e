# syntax=docker/dockerfile:1
#
# The chirpy image: `docker run -p 7000:7000 ghcr.io/apalis-dev/chirpy` serves every protocol on :7000
# and keeps its jobs in SQLite on the /var/lib/chirpy volume; `-e DATABASE_URL=postgres://...` uses
# PostgreSQL instead. docs/deployment.md explains each choice below; deploy/check tests this file.
#
#   docker build -t chirpy --build-arg VERSION=0.1.0 --build-arg REVISION="$(git rev-parse HEAD)" .
#
# Needs BuildKit (the default builder since Docker 23) for the cache mounts.

ARG RUST_VERSION=1.95

# ---- build: the release binary. protox compiles the protos, so no protoc; rustls and a bundled
# SQLite, so no OpenSSL or libsqlite3. Built on bookworm to match the runtime's glibc (2.36).
FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Only the workspace's members and what their builds read, so a change to the docs or the other
# SDKs reuses the layer. deploy/check fails when a new workspace member is missing here.
COPY Cargo.toml Cargo.lock ./
COPY proto proto
COPY third_party third_party
COPY server server
COPY sdks/rust sdks/rust
COPY bench bench
COPY conformance/driver conformance/driver
COPY conformance/runners/rust conformance/runners/rust
# The registry and target/ live in cache mounts, kept between builds; the binary is copied out of
# target/ in the same step because the mount is not part of the image.
RUN --mount=type=cache,id=chirpy-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=chirpy-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=chirpy-target,target=/src/target,sharing=locked \
    cargo build --release --locked --bin chirpy \
 && install -D -m 0755 target/release/chirpy /out/chirpy

# ---- runtime: debian:12-slim with curl, for a HEALTHCHECK that asks GET /healthz.
# The binary links only glibc, libm and libgcc_s (ldd), so gcr.io/distroless/cc-debian12 would also
# run it and be about 60 MB smaller, but it has no shell and no HTTP client, so no HEALTHCHECK
# (and chirpy has no health-check subcommand). curl adds about 11 MiB (libcurl4, libssl3, krb5).
FROM debian:12-slim AS runtime
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="chirpy" \
      org.opencontainers.image.description="A standalone job server on Apalis: gRPC, gRPC-web and HTTP/JSON on one port" \
      org.opencontainers.image.source="https://github.com/apalis-dev/chirpy" \
      org.opencontainers.image.url="https://github.com/apalis-dev/chirpy" \
      org.opencontainers.image.documentation="https://github.com/apalis-dev/chirpy/blob/main/docs/deployment.md" \
      org.opencontainers.image.licenses="MIT OR Apache-2.0" \
      org.opencontainers.image.vendor="Apalis" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:12-slim"

# A fixed UID/GID (10001), so volume and PVC ownership, `runAsUser` and `chown` on the host agree.
# /var/lib/chirpy belongs to it: a new named volume copies this ownership.
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 chirpy \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/chirpy --no-create-home \
            --shell /usr/sbin/nologin chirpy \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/chirpy

COPY --from=build /out/chirpy /usr/local/bin/chirpy

# Defaults for a container: listen on every interface, keep the SQLite file on the volume (an
# absolute path: sqlite:// + /var/lib/...). `-e DATABASE_URL=postgres://...` replaces it.
ENV CHIRPY_HOST=0.0.0.0 \
    CHIRPY_PORT=7000 \
    DATABASE_URL=sqlite:///var/lib/chirpy/chirpy.db
WORKDIR /var/lib/chirpy
VOLUME ["/var/lib/chirpy"]
EXPOSE 7000

# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# 200 only while the storage answers. Shell form so that a changed CHIRPY_PORT is followed; with
# `--port` on the command line instead, the check still asks 7000. The start period covers the
# database connect timeout (CHIRPY_CONNECT_TIMEOUT, 15s) and migrations.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --start-interval=2s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${CHIRPY_PORT:-7000}/healthz" || exit 1

# chirpy is PID 1 and handles SIGTERM itself: it drains for CHIRPY_SHUTDOWN_GRACE (30s) and exits 0.
# `docker stop` waits only 10s by default: use `docker stop -t 40` or compose's stop_grace_period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/chirpy"]
