# keel in a container: a multi-stage build; the runtime image holds the
# binary only (plus CA certificates for HTTPS webhooks and brokers) and runs
# as an unprivileged user. State goes to the /var/lib/keel volume.
#
#   docker build -t keel .
#   docker run --rm -v keel-data:/var/lib/keel -p 127.0.0.1:8080:8080 keel
#
# The build needs ../shared beside the repository only for tests, not here.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml ./
COPY crates ./crates
COPY fuzz ./fuzz
RUN cargo build --release --locked -p keel --bin keel \
 && strip target/release/keel

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/keel --shell /usr/sbin/nologin keel \
 && install -d -o keel -g keel -m 0750 /var/lib/keel /etc/keel
COPY --from=build /src/target/release/keel /usr/local/bin/keel
USER 10001:10001
WORKDIR /var/lib/keel
VOLUME ["/var/lib/keel"]
ENV KEEL_LOG=info KEEL_LOG_FORMAT=json
EXPOSE 8080
# The dashboard must listen beyond loopback inside the container; publish
# the port on the host's loopback only (see compose.yaml).
ENTRYPOINT ["/usr/local/bin/keel"]
CMD ["run", "--config", "/etc/keel/keel.toml", "--data-dir", "/var/lib/keel"]
