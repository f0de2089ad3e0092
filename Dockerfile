# Flex: multi-stage build. The build stage runs the same `cargo build --release --locked` that
# .ci/run exercises; the runtime stage is a slim Debian with the binary and nothing else.

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY src ./src
COPY migrations ./migrations
COPY console ./console
COPY benches ./benches
RUN cargo build --release --locked

FROM debian:bookworm-slim AS runtime
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin flex \
    && mkdir -p /data && chown flex:flex /data
COPY --from=build /src/target/release/flex /usr/local/bin/flex
USER flex
WORKDIR /data
VOLUME ["/data"]
ENV FLEX_LISTEN=0.0.0.0:8080 \
    FLEX_DATABASE_URL=sqlite:///data/flex.db
EXPOSE 8080
ENTRYPOINT ["flex"]
CMD ["serve"]
