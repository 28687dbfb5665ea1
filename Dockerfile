# syntax=docker/dockerfile:1
#
# One image with both dotjob binaries on a slim Debian base:
#   docker build -t dotjob .
#   docker run --rm dotjob dotjob-scheduler --help
#   docker run --rm dotjob dotjob-worker --help
# compose.yaml builds it for the scheduler and worker services.
# .ci/check_deploy.py checks that the packages built here are the binaries compose runs.

# ---------------------------------------------------------------- build stage
# Keep this at or above `rust-version` in the workspace Cargo.toml.
FROM rust:1.88-bookworm AS builder
WORKDIR /src

# Only what cargo needs: the workspace manifest, the lockfile (--locked), the cargo config
# and every workspace member (cargo loads all members' manifests, even unbuilt ones).
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY shared ./shared
COPY scheduler ./scheduler
COPY worker ./worker
COPY tests ./tests
COPY bench ./bench
COPY cli ./cli
COPY browser ./browser

# The crate registry and target dir are BuildKit cache mounts, so rebuilds are incremental.
# A cache mount is not part of the image, so the binaries are copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p dotjob-scheduler -p dotjob-worker \
    && mkdir -p /out \
    && cp target/release/dotjob-scheduler target/release/dotjob-worker /out/

# ---------------------------------------------------------------- runtime stage
FROM debian:bookworm-slim

# ca-certificates for rediss:// and https:// jobs.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# Unprivileged user; its home is the working directory (DOTJOB_DATA_DIR is relative to it).
RUN groupadd --system --gid 10001 dotjob \
    && useradd --system --uid 10001 --gid dotjob --create-home \
       --home-dir /var/lib/dotjob --shell /usr/sbin/nologin dotjob

COPY --from=builder /out/dotjob-scheduler /out/dotjob-worker /usr/local/bin/

USER 10001:10001
WORKDIR /var/lib/dotjob

# 8080: scheduler admin API, console, /metrics, /healthz (DOTJOB_LISTEN; set it to
#       0.0.0.0:8080 in a container, together with DOTJOB_ADMIN_TOKEN).
# 9100: worker /metrics and /healthz (DOTJOB_METRICS_LISTEN, off unless set).
EXPOSE 8080 9100

# No ENTRYPOINT, so `command:` in compose picks the binary.
CMD ["dotjob-scheduler"]
