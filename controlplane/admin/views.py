"""Domain objects -> admin API messages. Pure."""

from __future__ import annotations

import json
from typing import Iterable

from google.protobuf import json_format, timestamp_pb2

from controlplane.discovery.poller import ClusterSyncStatus
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Service, ServiceProblem
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.server.registry import ProxyRecord
from controlplane.translate.resources import ORDER
from controlplane.translate.route import DEFAULT_NUM_RETRIES, DEFAULT_RETRY_ON

# The translate modules register every message type that can sit inside an Any we send.
import controlplane.translate.cluster  # noqa: F401,E402
import controlplane.translate.listener  # noqa: F401,E402


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


def service(s: Service, problems: Iterable[ServiceProblem]) -> api.Service:
    return api.Service(
        name=s.name,
        state="serving",
        protocol=s.protocol.value,
        route=api.Route(hosts=list(s.route.hosts), path_prefix=s.route.path_prefix),
        container_port=s.container_port,
        declared_by=s.declared_by,
        endpoints=[endpoint(e) for e in s.endpoints],
        problems=[problem(p) for p in problems if p.service == s.name],
        policies=api.Policies(load_balancing="round_robin", retry_on=DEFAULT_RETRY_ON, num_retries=DEFAULT_NUM_RETRIES),
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
        )
        if status.last_nack is not None:
            entry.last_nack.CopyFrom(
                api.Nack(version=status.last_nack.version, error=status.last_nack.message, at=timestamp(status.last_nack.at))
            )
        message.types.append(entry)
    return message


def proxy_config(record: ProxyRecord) -> api.ProxyConfig:
    config = api.ProxyConfig(node_id=record.node_id, role=record.role)
    for type_url in ORDER:
        status = record.types.get(type_url)
        if status is None:
            continue
        for name, prepared in sorted(status.resources.items()):
            as_dict = json_format.MessageToDict(prepared.packed, preserving_proto_field_name=True)
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
    return message
