"""Fault injection for testing a revision safely: Envoy's fault filter sits in every Envoy's filter
chain with nothing to inject; a route's faults (a fixed delay, an abort with a gRPC or HTTP status,
each for a share of the calls, optionally only for calls with some headers) are its per-route config."""

from __future__ import annotations

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2
from google.protobuf import any_pb2

from controlplane.model.mesh import Fault
from controlplane.translate.durations import duration
from controlplane.translate.matchers import header_matcher
from controlplane.translate.packing import pack
from controlplane.translate.route_features import fractional_percent

FAULT = "envoy.filters.http.fault"


def fault_filter() -> hcm_pb2.HttpFilter:
    return hcm_pb2.HttpFilter(name=FAULT, typed_config=pack(fault_pb2.HTTPFault()))


def route_fault(service_name: str, fault: Fault) -> any_pb2.Any:
    """The route's faults. Runtime keys are per service, so an operator can turn one service's
    faults down at run time (Envoy's runtime) without touching the others'."""
    config = fault_pb2.HTTPFault(headers=[header_matcher(h) for h in fault.headers])
    if fault.delay_ms is not None:
        config.delay.CopyFrom(
            common_fault_pb2.FaultDelay(fixed_delay=duration(fault.delay_ms), percentage=fractional_percent(fault.delay_percent))
        )
        config.delay_percent_runtime = f"fault.{service_name}.delay.fixed_delay_percent"
        config.delay_duration_runtime = f"fault.{service_name}.delay.fixed_duration_ms"
    if fault.aborts:
        abort = fault_pb2.FaultAbort(percentage=fractional_percent(fault.abort_percent))
        if fault.abort_grpc_status is not None:
            abort.grpc_status = fault.abort_grpc_status
        else:
            abort.http_status = fault.abort_http_status or 503
        config.abort.CopyFrom(abort)
        config.abort_percent_runtime = f"fault.{service_name}.abort.abort_percent"
        config.abort_http_status_runtime = f"fault.{service_name}.abort.http_status"
        config.abort_grpc_status_runtime = f"fault.{service_name}.abort.grpc_status"
    return pack(config)
