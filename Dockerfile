# syntax=docker/dockerfile:1

# carewatch's container images: static binaries on a small base, running as
# an unprivileged user. The default target is carewatch, with the example
# configurations (the demo council's among them) under
# /usr/share/carewatch/examples; the target teams is carewatch-teams, the
# relay from Alertmanager to Microsoft Teams.
#
#   docker build -t carewatch .
#   docker run --rm carewatch --version
#   docker build --target teams -t carewatch-teams .
#   docker run --rm carewatch-teams --version
#
# The target alertmanager is Alertmanager with the time zone database.

# --- build: static binaries, no cgo, no dependence on the base's libc.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod \
    go mod download
COPY . .
ARG VERSION=dev
ARG REVISION=unknown
RUN --mount=type=cache,target=/root/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w \
        -X github.com/prometheus/common/version.Version=${VERSION} \
        -X github.com/prometheus/common/version.Revision=${REVISION}" \
      -o /out/ ./cmd/carewatch ./cmd/carewatch-demo ./cmd/carewatch-teams

# --- base: Alpine rather than an empty image, so that health checks have a
# shell and wget, and HTTPS sources (and Teams) have CA certificates.
FROM alpine:3.22 AS base
RUN addgroup -S -g 10001 carewatch \
 && adduser -S -D -H -u 10001 -G carewatch -h /nonexistent -s /sbin/nologin carewatch

# --- teams: the relay. It needs each channel's webhook URL file
# (--teams.webhook-url-file=NAME=FILE) and, to be reached from another
# container, --web.listen-address=:9840 (its default is loopback only).
FROM base AS teams
COPY --from=build /out/carewatch-teams /usr/local/bin/carewatch-teams
USER 10001:10001
EXPOSE 9840
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s \
    CMD wget -q -O /dev/null http://127.0.0.1:9840/-/healthy || exit 1
ENTRYPOINT ["/usr/local/bin/carewatch-teams"]

# --- alertmanager: the upstream image with the time zone database, which
# it lacks: the routing's working hours (time_intervals with a location)
# and TZ for the times in emails need it.
FROM prom/alertmanager:v0.28.1 AS alertmanager
COPY --from=build /usr/share/zoneinfo /usr/share/zoneinfo
ENV TZ=Europe/London

# --- carewatch (the default target, so it comes last).
FROM base AS carewatch
COPY --from=build /out/carewatch /usr/local/bin/carewatch
# carewatch-demo runs the carewatch beside it on the demo council (the
# Compose stack's entrypoint).
COPY --from=build /out/carewatch-demo /usr/local/bin/carewatch-demo
COPY examples/ /usr/share/carewatch/examples/
# carewatch-demo reads examples/demo/carewatch.yml relative to here.
WORKDIR /usr/share/carewatch
USER 10001:10001
EXPOSE 9839
HEALTHCHECK --interval=15s --timeout=5s --start-period=1m \
    CMD wget -q -O /dev/null http://127.0.0.1:9839/-/healthy || exit 1
ENTRYPOINT ["/usr/local/bin/carewatch"]
CMD ["run", "--config.file=/etc/carewatch/carewatch.yml"]
