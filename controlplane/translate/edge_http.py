"""The edge's HTTP connection manager: the shared one (http_connection_manager.py) hardened for
clients on the internet, with access logs and gRPC stats. Values: Envoy's edge best practices."""

from __future__ import annotations

from envoy.config.core.v3 import protocol_pb2
from envoy.extensions.filters.http.grpc_stats.v3 import config_pb2 as grpc_stats_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import duration_pb2, wrappers_pb2

from controlplane.translate.access_log import HEADER_TO_METADATA, edge_access_logs, grpc_path_metadata
from controlplane.translate.edge_options import EdgeOptions, GrpcStats
from controlplane.translate.http_connection_manager import connection_manager
from controlplane.translate.packing import pack

GRPC_STATS = "envoy.filters.http.grpc_stats"


def grpc_stats(mode: GrpcStats) -> grpc_stats_pb2.FilterConfig:
    return grpc_stats_pb2.FilterConfig(
        emit_filter_state=True,
        enable_upstream_stats=True,
        stats_for_all_methods=wrappers_pb2.BoolValue(value=mode is GrpcStats.PER_METHOD),
    )


def edge_connection_manager(
    stat_prefix: str, route_config_name: str, options: EdgeOptions, authentication: hcm_pb2.HttpFilter | None = None
) -> hcm_pb2.HttpConnectionManager:
    limits = options.limits
    leading = [
        hcm_pb2.HttpFilter(name=HEADER_TO_METADATA, typed_config=pack(grpc_path_metadata())),
        hcm_pb2.HttpFilter(name=GRPC_STATS, typed_config=pack(grpc_stats(options.grpc_stats))),
    ]
    manager = connection_manager(stat_prefix, rds_name=route_config_name, leading_filters=leading, authentication=authentication)
    # The client's address is the peer's (or the one `trusted_hops` proxies in front of us saw), never
    # whatever x-forwarded-for a client made up.
    manager.use_remote_address.CopyFrom(wrappers_pb2.BoolValue(value=True))
    manager.xff_num_trusted_hops = limits.trusted_hops
    manager.generate_request_id.CopyFrom(wrappers_pb2.BoolValue(value=True))
    manager.preserve_external_request_id = False
    manager.always_set_request_id_in_response = True
    manager.normalize_path.CopyFrom(wrappers_pb2.BoolValue(value=True))
    manager.merge_slashes = True
    manager.path_with_escaped_slashes_action = hcm_pb2.HttpConnectionManager.UNESCAPE_AND_REDIRECT
    manager.max_request_headers_kb.CopyFrom(wrappers_pb2.UInt32Value(value=limits.max_request_headers_kb))
    manager.request_headers_timeout.CopyFrom(duration_pb2.Duration(seconds=limits.request_headers_timeout_seconds))
    manager.common_http_protocol_options.CopyFrom(
        protocol_pb2.HttpProtocolOptions(
            idle_timeout=duration_pb2.Duration(seconds=limits.connection_idle_timeout_seconds),
            max_headers_count=wrappers_pb2.UInt32Value(value=limits.max_headers_count),
            headers_with_underscores_action=protocol_pb2.HttpProtocolOptions.REJECT_REQUEST,
        )
    )
    manager.http2_protocol_options.CopyFrom(
        protocol_pb2.Http2ProtocolOptions(
            max_concurrent_streams=wrappers_pb2.UInt32Value(value=limits.max_concurrent_streams),
            initial_stream_window_size=wrappers_pb2.UInt32Value(value=limits.initial_stream_window_bytes),
            initial_connection_window_size=wrappers_pb2.UInt32Value(value=limits.initial_connection_window_bytes),
        )
    )
    manager.access_log.extend(edge_access_logs(options.access_log))
    return manager
