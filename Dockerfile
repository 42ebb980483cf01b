# The one `ferric` binary (API, conductor, embedded mode, db migrations).
# PostgreSQL's client library and SQLite are built in (bundled), so the
# runtime image needs nothing but CA certificates and curl for health checks.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ferric

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --home-dir /var/lib/ferric --create-home ferric
COPY --from=build /src/target/release/ferric /usr/local/bin/ferric
USER ferric
WORKDIR /var/lib/ferric
ENV FERRIC_DATA_DIR=/var/lib/ferric FERRIC_API__HOST=0.0.0.0
EXPOSE 6385
ENTRYPOINT ["ferric"]
CMD ["standalone"]
