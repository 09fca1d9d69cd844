# syntax=docker/dockerfile:1

# upvest-relay container image.
#
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t upvest-relay .
#   docker run --rm -it -p 9090:9090 upvest-relay demo     # a trial, nothing configured
#
# The result is a static binary on distroless, running as nonroot (65532).

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src

# Dependencies first, so source edits do not refetch modules.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/relay ./cmd/relay

# An empty data directory owned by nonroot: a volume mounted on /data starts
# from it, so the embedded JetStream store is writable without a shell in the
# final image.
RUN mkdir -p /out/data && chown 65532:65532 /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/relay /relay
COPY --from=build --chown=65532:65532 /out/data /data

ENV RELAY_DATA_DIR=/data
VOLUME ["/data"]

# 8080: webhook ingress (RELAY_LISTEN_ADDR); 9090: /healthz, /readyz, /metrics
# (RELAY_ADMIN_ADDR).
#
# No 4222: with RELAY_NATS_URL empty the relay starts an embedded JetStream
# server that listens on 127.0.0.1 only, so it is unreachable from outside the
# container. That mode is for single-container trials (events persist under
# /data); production sets RELAY_NATS_URL to a JetStream cluster (see deploy/).
EXPOSE 8080 9090

# nonroot (65532:65532), numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/relay"]
CMD ["serve"]
