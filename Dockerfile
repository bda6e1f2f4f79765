# retail-etl in a container. NOT built or run on the project's machines (no Docker there):
# kept small and checked by reading; see README "Observing it".
# Build: docker build -t retail-etl .
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p retail-etl \
 && cp target/release/retail-etl /usr/local/bin/retail-etl

FROM debian:bookworm-slim
# ca-certificates: TLS to a remote PostgreSQL or Kafka.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/retail-etl --create-home retail
COPY --from=build /usr/local/bin/retail-etl /usr/local/bin/retail-etl
COPY config/retail.example.toml /etc/retail-etl/retail.toml
USER retail
WORKDIR /var/lib/retail-etl
# The embedded log and, with the default store, the SQLite file live here.
ENV RETAIL__DATA_DIR=/var/lib/retail-etl
VOLUME ["/var/lib/retail-etl"]
EXPOSE 8080
ENTRYPOINT ["retail-etl"]
CMD ["run", "--config", "/etc/retail-etl/retail.toml"]
