"""The edge's access log: one line per call on Envoy's stdout (what ECS's awslogs driver ships),
JSON by default. Field by field in docs/envoy.md."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import base_pb2, substitution_format_string_pb2
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.access_loggers.stream.v3 import stream_pb2
from envoy.extensions.filters.http.header_to_metadata.v3 import header_to_metadata_pb2
from envoy.type.matcher.v3 import regex_pb2, string_pb2
from envoy.type.v3 import percent_pb2
from google.protobuf import struct_pb2

from controlplane.translate.edge_options import AccessLog, AccessLogFormat
from controlplane.translate.packing import pack

STDOUT_ACCESS_LOG = "envoy.access_loggers.stdout"
HEADER_TO_METADATA = "envoy.filters.http.header_to_metadata"
GRPC_METADATA = "grpc"  # dynamic metadata namespace holding the call's gRPC service and method
SAMPLE_RUNTIME_KEY = "edge.access_log.sample"

# Operators: https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage
JSON_FIELDS = MappingProxyType({
    "time": "%START_TIME(%Y-%m-%dT%H:%M:%S.%3fZ)%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(:PATH)%",
    "authority": "%REQ(:AUTHORITY)%",
    "protocol": "%PROTOCOL%",
    "grpc_service": f"%DYNAMIC_METADATA({GRPC_METADATA}:service)%",
    "grpc_method": f"%DYNAMIC_METADATA({GRPC_METADATA}:method)%",
    "grpc_status": "%GRPC_STATUS%",
    "grpc_status_code": "%GRPC_STATUS_NUMBER%",
    "http_status": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "upstream_service": "%UPSTREAM_CLUSTER%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_task": "%UPSTREAM_HOST_NAME%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration_ms": "%DURATION%",
    "upstream_service_time_ms": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "downstream_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "tls_version": "%DOWNSTREAM_TLS_VERSION%",
    "sni": "%REQUESTED_SERVER_NAME%",
})


def grpc_path_metadata() -> header_to_metadata_pb2.Config:
    """Splits a gRPC path `/pkg.Service/Method` into dynamic metadata the access log reads."""
    rules = []
    for key, substitution in (("service", r"\1"), ("method", r"\2")):
        rules.append(
            header_to_metadata_pb2.Config.Rule(
                header=":path",
                on_header_present=header_to_metadata_pb2.Config.KeyValuePair(
                    metadata_namespace=GRPC_METADATA,
                    key=key,
                    regex_value_rewrite=regex_pb2.RegexMatchAndSubstitute(
                        pattern=regex_pb2.RegexMatcher(regex=r"^/([^/]+)/([^/?]+)$"), substitution=substitution
                    ),
                ),
            )
        )
    return header_to_metadata_pb2.Config(request_rules=rules)


def _failed_call() -> accesslog_pb2.AccessLogFilter:
    """HTTP 5xx, or a gRPC call whose status is not OK."""
    grpc_call = accesslog_pb2.AccessLogFilter(
        header_filter=accesslog_pb2.HeaderFilter(
            header=route_components_pb2.HeaderMatcher(
                name="content-type", string_match=string_pb2.StringMatcher(prefix="application/grpc")
            )
        )
    )
    not_ok = accesslog_pb2.AccessLogFilter(
        grpc_status_filter=accesslog_pb2.GrpcStatusFilter(statuses=[accesslog_pb2.GrpcStatusFilter.OK], exclude=True)
    )
    server_error = accesslog_pb2.AccessLogFilter(
        status_code_filter=accesslog_pb2.StatusCodeFilter(
            comparison=accesslog_pb2.ComparisonFilter(
                op=accesslog_pb2.ComparisonFilter.GE, value=_runtime_uint(500, "edge.access_log.min_error_status")
            )
        )
    )
    return accesslog_pb2.AccessLogFilter(
        or_filter=accesslog_pb2.OrFilter(
            filters=[server_error, accesslog_pb2.AccessLogFilter(and_filter=accesslog_pb2.AndFilter(filters=[grpc_call, not_ok]))]
        )
    )


def _runtime_uint(value: int, key: str) -> base_pb2.RuntimeUInt32:
    return base_pb2.RuntimeUInt32(default_value=value, runtime_key=key)


# One line per TCP connection, when it closes (the tcp_proxy filter's access log): the fields of a
# call that a connection has too (the TLS SNI name a client sent: what a port shared by SNI routes
# on), and why it ended.
TCP_JSON_FIELDS = MappingProxyType({
    **{name: JSON_FIELDS[name] for name in (
        "time", "response_flags", "upstream_service", "upstream_host", "upstream_task", "bytes_received", "bytes_sent",
        "duration_ms", "downstream_address", "sni",
    )},
    "termination": "%CONNECTION_TERMINATION_DETAILS%",
})


def tcp_access_logs(config: AccessLog) -> list[accesslog_pb2.AccessLog]:
    """The edge tcp_proxy's access_log list (empty when off): as for calls, sampled connections, and
    every connection that failed (any response flag: no healthy task, connect failure, overflow)."""
    failed = accesslog_pb2.AccessLogFilter(response_flag_filter=accesslog_pb2.ResponseFlagFilter())
    return edge_access_logs(config, fields=TCP_JSON_FIELDS, failed=failed)


def edge_access_logs(
    config: AccessLog, *, fields: Mapping[str, str] = JSON_FIELDS, failed: accesslog_pb2.AccessLogFilter | None = None
) -> list[accesslog_pb2.AccessLog]:
    """The connection manager's access_log list (empty when off)."""
    if config.format is AccessLogFormat.OFF:
        return []
    stdout = stream_pb2.StdoutAccessLog()
    if config.format is AccessLogFormat.JSON:
        json_format = struct_pb2.Struct()
        json_format.update(fields)
        stdout.log_format.CopyFrom(
            substitution_format_string_pb2.SubstitutionFormatString(json_format=json_format, omit_empty_values=False)
        )
    log = accesslog_pb2.AccessLog(name=STDOUT_ACCESS_LOG, typed_config=pack(stdout))
    if config.sample_percent < 100:
        sampled = accesslog_pb2.AccessLogFilter(
            runtime_filter=accesslog_pb2.RuntimeFilter(
                runtime_key=SAMPLE_RUNTIME_KEY,
                percent_sampled=percent_pb2.FractionalPercent(
                    numerator=round(config.sample_percent * 10_000), denominator=percent_pb2.FractionalPercent.MILLION
                ),
                use_independent_randomness=True,
            )
        )
        # Sampling thins out the calls that went well; every failed call is still logged.
        failures = failed if failed is not None else _failed_call()
        log.filter.CopyFrom(accesslog_pb2.AccessLogFilter(or_filter=accesslog_pb2.OrFilter(filters=[sampled, failures])))
    return [log]
