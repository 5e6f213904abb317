# The filegate binary on a slim base: the last stage, so the default target. Built by
# compose.yaml; not used by the tests.
#
# The fake Meta (test support) is a target of its own, for a local worker to talk to:
#   docker build --target fake-meta -t filegate-fake-meta .
#   docker run --rm -p 8090:8090 filegate-fake-meta
# It is compiled in a stage of its own: the service's image never contains it, and BuildKit
# skips that stage when it builds the default target.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p filegate

FROM rust:1.95-bookworm AS build-fake-meta
WORKDIR /src
COPY . .
RUN cargo build --release -p filegate-fake-meta

FROM debian:bookworm-slim AS fake-meta
COPY --from=build-fake-meta /src/target/release/filegate-fake-meta /usr/local/bin/filegate-fake-meta
EXPOSE 8090
ENTRYPOINT ["filegate-fake-meta"]
# Every interface, or the published port reaches nothing. A command given to `docker run` or
# compose replaces these arguments, so it repeats `--addr 0.0.0.0:8090` next to --token,
# --api-version or --app-id.
CMD ["--addr", "0.0.0.0:8090"]

FROM debian:bookworm-slim AS filegate
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/filegate /usr/local/bin/filegate
EXPOSE 8080
ENTRYPOINT ["filegate"]
CMD ["serve"]
