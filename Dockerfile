# incident-bot container image: a release build on the official Rust image, run on Debian slim as a non-root user.
#
#   docker build -t incident-bot .
#   docker run --rm -p 3000:3000 --env-file .env -v incident-bot-data:/data incident-bot
#
# The runtime image is debian:trixie-slim rather than distroless: the bot verifies TLS with the system's CA
# certificates (rustls native roots), and the health check below needs a shell. The builder uses the same Debian
# release, so the binary links against the same glibc.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS builder
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY config ./config
COPY assets ./assets
# The cache mounts keep the crate registry and compiled dependencies between builds (BuildKit); the binary is
# copied out of the cached target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin incident-bot \
    && cp target/release/incident-bot /usr/local/bin/incident-bot

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin incident-bot \
    && mkdir -p /data && chown incident-bot:incident-bot /data
COPY --from=builder /usr/local/bin/incident-bot /usr/local/bin/incident-bot
WORKDIR /app
# The example configuration and catalog; mount your own over /app/config (read-only is enough).
COPY config ./config
ENV DATABASE_URL=sqlite:///data/incident-bot.db \
    PORT=3000
VOLUME ["/data"]
EXPOSE 3000
USER incident-bot:incident-bot
# GET /healthz over bash's /dev/tcp: no curl in the image. Answers while the process serves HTTP.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-3000} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/incident-bot"]
CMD ["serve"]
