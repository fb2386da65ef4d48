#!/bin/sh
# Entrypoint of the Envoy image: writes Envoy's bootstrap from the ECS task metadata endpoint v4
# (`controlplane bootstrap --from-ecs-metadata`), then execs Envoy with the container's arguments.
# Every setting is an environment variable, so a task definition (or ECS secrets) can set it:
#
#   XDS_ADDRESS           HOST:PORT of the control plane (its NLB), comma-separated for several (required)
#   ENVOY_ROLE            edge (default) or sidecar
#   ENVOY_LISTEN_PORT     edge: port of the edge listener (default 10000)
#   ENVOY_SERVICE         sidecar: the ECS service (xds.service); default: the xds.service label of the task's app
#   ENVOY_OUTBOUND_PORT   sidecar: port the app calls its upstreams on (default 15001)
#   ENVOY_INBOUND_PORT    sidecar: port of an inbound listener in front of the app (default: none)
#   ENVOY_APP_PORT        sidecar: the app's port behind it (default: the app's xds.port label)
#   ENVOY_ZONE_AWARE      sidecar: true = zone-aware balancing with its own service as its fleet (default false)
#   ENVOY_LOCAL_SERVICE   edge: the ECS service (xds.service) of the edge fleet itself, for zone-aware balancing
#   ENVOY_ADMIN_PORT      Envoy's admin interface on 127.0.0.1 (default 9901)
#   ENVOY_NODE_ID         default: <cluster>/<task id>
#   XDS_TLS_CA            PEM file that verifies the control plane (turns TLS on)
#   XDS_TLS_SNI           server name sent to and verified on the control plane's certificate
#   XDS_TLS_CERT, XDS_TLS_KEY                 PEM files of a client certificate (mTLS)
#   XDS_TLS_CA_PEM, XDS_TLS_CERT_PEM, XDS_TLS_KEY_PEM  the same as PEM text (ECS secrets inject text, not files)
#   ENVOY_BOOTSTRAP       where the bootstrap is written (default /tmp/envoy/bootstrap.json)
#   ENVOY_LOG_FLUSH_MSEC  how often Envoy writes its buffered access log to stdout (default 1000;
#                         Envoy's own default is 10000, so lines reach CloudWatch 10 s late)
set -eu

: "${XDS_ADDRESS:?XDS_ADDRESS=HOST:PORT of the control plane is required}"
bootstrap="${ENVOY_BOOTSTRAP:-/tmp/envoy/bootstrap.json}"
secrets="$(dirname "$bootstrap")"
mkdir -p "$secrets"
umask 077

# ECS secrets arrive as environment variables: keep them as files Envoy can read.
pem_file() {  # pem_file NAME TEXT -> path
    printf '%s\n' "$2" > "$secrets/$1"
    printf '%s' "$secrets/$1"
}
if [ -n "${XDS_TLS_CA_PEM:-}" ]; then XDS_TLS_CA="$(pem_file xds-ca.pem "$XDS_TLS_CA_PEM")"; fi
if [ -n "${XDS_TLS_CERT_PEM:-}" ]; then XDS_TLS_CERT="$(pem_file xds-client.pem "$XDS_TLS_CERT_PEM")"; fi
if [ -n "${XDS_TLS_KEY_PEM:-}" ]; then XDS_TLS_KEY="$(pem_file xds-client.key "$XDS_TLS_KEY_PEM")"; fi

generate() {
    set -- bootstrap --from-ecs-metadata --role "${ENVOY_ROLE:-edge}" --admin-port "${ENVOY_ADMIN_PORT:-9901}"
    for address in $(printf '%s' "$XDS_ADDRESS" | tr ',' ' '); do
        set -- "$@" --xds "$address"
    done
    if [ "${ENVOY_ROLE:-edge}" = edge ]; then set -- "$@" --listen-port "${ENVOY_LISTEN_PORT:-10000}"; fi
    if [ -n "${ENVOY_NODE_ID:-}" ]; then set -- "$@" --node-id "$ENVOY_NODE_ID"; fi
    if [ -n "${ENVOY_SERVICE:-}" ]; then set -- "$@" --service "$ENVOY_SERVICE"; fi
    if [ -n "${ENVOY_OUTBOUND_PORT:-}" ]; then set -- "$@" --outbound-port "$ENVOY_OUTBOUND_PORT"; fi
    if [ -n "${ENVOY_INBOUND_PORT:-}" ]; then set -- "$@" --inbound-port "$ENVOY_INBOUND_PORT"; fi
    if [ -n "${ENVOY_APP_PORT:-}" ]; then set -- "$@" --app-port "$ENVOY_APP_PORT"; fi
    if [ "${ENVOY_ZONE_AWARE:-false}" = true ]; then set -- "$@" --zone-aware; fi
    if [ -n "${ENVOY_LOCAL_SERVICE:-}" ]; then set -- "$@" --local-service "$ENVOY_LOCAL_SERVICE"; fi
    if [ -n "${XDS_TLS_CA:-}" ]; then set -- "$@" --xds-tls-ca "$XDS_TLS_CA"; fi
    if [ -n "${XDS_TLS_SNI:-}" ]; then set -- "$@" --xds-tls-sni "$XDS_TLS_SNI"; fi
    if [ -n "${XDS_TLS_CERT:-}" ]; then set -- "$@" --xds-tls-cert "$XDS_TLS_CERT"; fi
    if [ -n "${XDS_TLS_KEY:-}" ]; then set -- "$@" --xds-tls-key "$XDS_TLS_KEY"; fi
    controlplane "$@"
}

generate > "$bootstrap"
exec envoy -c "$bootstrap" --file-flush-interval-msec "${ENVOY_LOG_FLUSH_MSEC:-1000}" "$@"
