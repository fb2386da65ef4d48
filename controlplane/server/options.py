"""The grpc options of the xDS server."""

from __future__ import annotations

# grpc core refuses new calls once more than `grpc.server.max_pending_requests` wait for the
# application (randomly between it and the hard limit, always above; defaults 1,000 and 3,000).
# The grpc.aio server takes calls from core one at a time on the event loop, so a fleet
# reconnecting at once (after a control-plane restart) queues thousands; they must wait, not fail.
DEFAULT_MAX_PENDING_STREAMS = 20_000
# And a call that waits longer than this to be taken up is cancelled (grpc's default: 30 s, which
# a busy 2-core server taking up thousands of streams one by one can exceed).
MAX_PENDING_SECONDS = 300


def xds_server_options(
    max_pending_streams: int = DEFAULT_MAX_PENDING_STREAMS,
    max_connection_age_seconds: float = 0.0,
    max_connection_age_grace_seconds: float = 30.0,
) -> list[tuple[str, int]]:
    options = [
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.server.max_pending_requests", max_pending_streams),
        ("grpc.server.max_pending_requests_hard_limit", max_pending_streams),
        ("grpc.server_max_unrequested_time_in_server", MAX_PENDING_SECONDS),
    ]
    if max_connection_age_seconds > 0:
        # xDS streams live as long as their connection. An aged connection gets a GOAWAY (grpc core
        # draws each connection's age within +-10 % of this, so a fleet does not move at once);
        # its streams go on for the grace period, then the connection closes and the proxy
        # reconnects, through the NLB, to any replica: streams spread over replicas added since.
        options += [
            ("grpc.max_connection_age_ms", int(max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(max_connection_age_grace_seconds * 1000)),
        ]
    return options
