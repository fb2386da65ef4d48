"""Domain objects -> admin API messages. Pure."""

from __future__ import annotations

import json
from typing import Any, Iterable

from google.protobuf import json_format, timestamp_pb2

from controlplane.admin.readiness import Readiness
from controlplane.discovery.request_budget import RequestBudget
from controlplane.discovery.status import ClusterSyncStatus
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Service, ServiceProblem
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.server.registry import ProxyRecord
from controlplane.xds.any_types import load_any_types
from controlplane.xds.types import ORDER, TypeUrl


def timestamp(at: float | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def problem(p: ServiceProblem) -> api.Problem:
    return api.Problem(
        service=p.service or "",
        task_definition=p.task_definition,
        container=p.container,
        label=p.label or "",
        value=p.value or "",
        severity=p.severity,
        message=p.message,
        kind=p.kind.value,
    )


def endpoint(e: Endpoint) -> api.Endpoint:
    return api.Endpoint(
        address=e.address,
        port=e.port,
        task_arn=e.task_arn,
        task_id=e.task_id,
        cluster=e.cluster,
        task_definition=e.task_definition,
        health=e.health.value,
        lifecycle="draining" if e.health is EndpointHealth.DRAINING else "serving",
        availability_zone=e.availability_zone,
    )


def _route(s: Service) -> api.Route:
    """How calls reach the service: hosts and prefix, or a TCP service's port and its TLS SNI names
    (no hosts for the port's catch-all, no prefix)."""
    if not s.protocol.is_http:
        return api.Route(port=s.route.port or 0, hosts=list(s.route.server_names))
    return api.Route(hosts=list(s.route.hosts), path_prefix=s.route.path_prefix)


def service(s: Service, problems: Iterable[ServiceProblem]) -> api.Service:
    return api.Service(
        name=s.name,
        state="serving",
        protocol=s.protocol.value,
        route=_route(s),
        container_port=s.container_port,
        declared_by=s.declared_by,
        endpoints=[endpoint(e) for e in s.endpoints],
        problems=[problem(p) for p in problems if p.service == s.name],
        policies=policies(s),
    )


def policies(s: Service) -> api.Policies:
    """The traffic policy Envoy gets for this service, as the labels set it (durations in ms)."""
    p = s.policy
    lb, check, outlier, limits, retry, timeouts = (
        p.load_balancing, p.health_check, p.outlier_detection, p.circuit_breakers, p.retry, p.timeouts
    )
    grpc_max = timeouts.grpc_timeout_header_max_ms
    return api.Policies(
        load_balancing=lb.policy.value,
        retry_on=",".join(retry.retry_on),
        num_retries=retry.num_retries,
        hash_header=lb.hash_header or "",
        slow_start_ms=lb.slow_start_ms,
        locality=lb.locality.value,
        zone_min_tasks=lb.zone_min_tasks or 0,
        health_check=check.kind.value,
        health_check_target=(check.grpc_service if check.kind.value == "grpc" else check.path) if check.enabled else "",
        health_check_interval_ms=check.interval_ms if check.enabled else 0,
        health_check_timeout_ms=check.timeout_ms if check.enabled else 0,
        healthy_threshold=check.healthy_threshold if check.enabled else 0,
        unhealthy_threshold=check.unhealthy_threshold if check.enabled else 0,
        outlier_detection=outlier.enabled,
        outlier_consecutive_5xx=outlier.consecutive_5xx or 0,
        outlier_consecutive_gateway_errors=outlier.consecutive_gateway_errors or 0,
        outlier_consecutive_local_origin_failures=outlier.consecutive_local_origin_failures or 0,
        outlier_ejection_time_ms=outlier.base_ejection_ms if outlier.enabled else 0,
        outlier_max_ejection_percent=outlier.max_ejection_percent if outlier.enabled else 0,
        outlier_failure_percent=outlier.failure_percent or 0,
        outlier_failure_min_requests=outlier.failure_min_requests if outlier.failure_percent else 0,
        outlier_failure_min_tasks=outlier.failure_min_tasks if outlier.failure_percent else 0,
        max_connections=limits.max_connections,
        max_pending_requests=limits.max_pending_requests,
        max_requests=limits.max_requests,
        max_retries=limits.max_retries,
        per_try_timeout_ms=retry.per_try_timeout_ms,
        retry_budget_percent=retry.budget_percent or 0.0,
        route_timeout_ms=timeouts.route_ms,
        idle_timeout_ms=timeouts.idle_ms or 0,
        max_stream_duration_ms=timeouts.max_stream_duration_ms or 0,
        grpc_timeout="ignored" if grpc_max is None else "unlimited" if grpc_max == 0 else f"{grpc_max}ms",
        rate_limit_average=p.rate_limit.average if p.rate_limit else 0,
        rate_limit_period_ms=p.rate_limit.period_ms if p.rate_limit else 0,
        rate_limit_burst=p.rate_limit.max_tokens if p.rate_limit else 0,
        upstream_tls=p.tls is not None,
        tls_sni=p.tls.sni if p.tls else "",
        weights=[f"{t.service}:{t.weight}" for t in s.split.targets] if s.split else [],
        upstreams=list(s.upstreams),
        route_method=s.route.method or "",
        route_priority=s.route.priority,
        route_enabled=s.route.enabled and s.subset_of is None,
        route_headers=[h.name if h.value is None else f"{h.name}={h.value}" for h in s.route.headers],
    )


def disabled_services(mesh: Mesh) -> list[api.Service]:
    """Services named by labels that are not served: every declaration of theirs was invalid."""
    served = {s.name for s in mesh.services}
    names = sorted({p.service for p in mesh.problems if p.service and p.service not in served and p.severity == "error"})
    return [
        api.Service(name=name, state="disabled", problems=[problem(p) for p in mesh.problems if p.service == name])
        for name in names
    ]


def services(mesh: Mesh) -> list[api.Service]:
    found = [service(s, mesh.problems) for s in mesh.services] + disabled_services(mesh)
    return sorted(found, key=lambda s: s.name)


def proxy(record: ProxyRecord) -> api.Proxy:
    message = api.Proxy(
        node_id=record.node_id,
        node_cluster=record.node_cluster,
        role=record.role,
        peer=record.peer,
        connected_since=timestamp(record.connected_at),
        user_agent=record.user_agent,
        stream_id=record.stream_id,
        identity=record.identity,
    )
    for type_url in ORDER:
        status = record.types.get(type_url)
        if status is None:
            continue
        entry = api.ResourceTypeStatus(
            type=type_url.short,
            type_url=type_url.value,
            version_sent=status.sent_version or "",
            version_acked=status.acked_version or "",
            responses_sent=status.responses_sent,
            nacks=status.nacks,
            resource_names=list(status.resource_names),
            sent_at=timestamp(status.sent_at),
            acked_at=timestamp(status.acked_at),
            resends=status.resends,
        )
        if status.retry_at is not None:
            entry.next_resend_at.FromNanoseconds(int(status.retry_at * 1e9))
        if status.last_nack is not None:
            entry.last_nack.CopyFrom(
                api.Nack(version=status.last_nack.version, error=status.last_nack.message, at=timestamp(status.last_nack.at))
            )
        message.types.append(entry)
    return message


def proxy_config(record: ProxyRecord) -> api.ProxyConfig:
    config = api.ProxyConfig(node_id=record.node_id, role=record.role, stream_id=record.stream_id, identity=record.identity)
    load_any_types()  # the JSON mapping must know every type packed inside an Any
    for type_url in ORDER:
        status = record.types.get(type_url)
        if status is None:
            continue
        for name, prepared in sorted(status.resources.items()):
            as_dict = json_format.MessageToDict(prepared.packed, preserving_proto_field_name=True)
            if type_url is TypeUrl.SECRET and "tls_certificate" in as_dict:
                # The admin API shows what a proxy receives, but never a private key.
                as_dict["tls_certificate"]["private_key"] = {"inline_string": "[redacted]"}
            config.resources.append(
                api.Resource(
                    type=type_url.short,
                    type_url=type_url.value,
                    name=name,
                    version=prepared.version,
                    json=json.dumps(as_dict, sort_keys=True),
                )
            )
    return config


def cluster_status(status: ClusterSyncStatus, tasks: int) -> api.ClusterStatus:
    message = api.ClusterStatus(
        cluster=status.cluster,
        view_age_seconds=status.staleness_seconds() or 0.0,
        last_sync_seconds=status.last_duration_seconds or 0.0,
        last_error=status.last_error or "",
        consecutive_failures=status.consecutive_failures,
        last_success=timestamp(status.last_success_at),
        tasks=tasks,
    )
    for operation, count in (status.last_api_calls or {}).items():
        message.last_sync_api_calls[operation] = count
    for operation, count in status.api_calls_total.items():
        message.api_calls_total[operation] = count
    return message


def readiness(r: Readiness) -> dict[str, Any]:
    """The readiness fields of api.Status."""
    return {
        "degraded": r.degraded,
        "failures": [
            api.StageFailure(stage=f.stage, error=f.error, since=timestamp(f.since), last=timestamp(f.last), consecutive=f.consecutive)
            for f in r.failures
        ],
        "config_age_seconds": r.config_age_seconds() or 0.0,
        "readiness_window_seconds": r.window_seconds,
        "pipeline_failures_total": r.failures_total,
    }


def ecs_requests(budget: RequestBudget) -> api.EcsRequests:
    """This replica's ECS requests: by operation since start, in the last minute, and its cap."""
    return api.EcsRequests(
        by_operation=budget.by_operation(),
        last_minute=budget.per_minute(),
        limit_per_second=budget.bucket.rate,
        burst=budget.bucket.burst,
        waited_seconds=budget.waited_seconds,
    )
