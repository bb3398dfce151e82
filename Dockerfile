# syntax=docker/dockerfile:1
# Build stage: the release binary, with the toolchain the project builds with.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml build.rs ./
# The order build.rs hands the linker: the server's executed code together (README, Performance).
COPY linker ./linker
COPY src ./src
COPY benches ./benches
COPY config ./config
RUN cargo build --release --locked --bin divine-heroes

# Runtime stage: a small Debian base, non-root, the binary and the game data.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* curl=7.88.* \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin app
WORKDIR /app
COPY --from=build /src/target/release/divine-heroes /usr/local/bin/divine-heroes
COPY config ./config
RUN mkdir -p /app/data && chown app:app /app/data
USER 10001:10001
# One malloc arena: glibc's default (8 per core) lets each busy thread keep its
# own heap, and RSS under sustained load grew past 64 MiB (README, Performance).
ENV HOST=0.0.0.0 \
    MALLOC_ARENA_MAX=1 \
    LOG_FORMAT=json \
    DATA_DIR=/app/data \
    GAME_DATA_DIR=/app/config
EXPOSE 8001 8002 8003
# PORT is set per role (8001 api/all, 8002 battle, 8003 gacha).
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["sh", "-c", "curl -fsS http://127.0.0.1:${PORT:-8001}/health/live || exit 1"]
ENTRYPOINT ["divine-heroes"]
CMD ["serve", "--role", "all"]
