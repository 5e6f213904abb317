# The filegate binary on a slim base. Built by compose.yaml; not used by the tests.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p filegate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/filegate /usr/local/bin/filegate
EXPOSE 8080
ENTRYPOINT ["filegate"]
CMD ["serve"]
