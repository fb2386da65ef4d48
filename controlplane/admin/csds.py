"""Envoy's Client Status Discovery Service (envoy.service.status.v3): what each connected proxy was sent, and
whether it ACKed or NACKed it, in the standard shape that `grpcurl`, istioctl-like tools and dashboards read."""

from __future__ import annotations

import re
from typing import AsyncIterator, Iterable, Protocol

import grpc
from envoy.admin.v3 import config_dump_shared_pb2 as dump
from envoy.config.core.v3 import base_pb2
from envoy.service.status.v3 import csds_pb2, csds_pb2_grpc
from envoy.type.matcher.v3 import node_pb2, string_pb2
from google.protobuf import timestamp_pb2

from controlplane.server.registry import ProxyRecord, TypeStatus
from controlplane.xds.types import ORDER


class ProxySource(Protocol):
    def proxies(self) -> list[ProxyRecord]: ...


def _timestamp(at: float | None) -> timestamp_pb2.Timestamp | None:
    if at is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(at * 1e9))
    return stamp


def _string_matches(matcher: string_pb2.StringMatcher, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    if kind == "exact":
        return value == matcher.exact
    if kind == "prefix":
        return value.startswith(matcher.prefix)
    if kind == "suffix":
        return value.endswith(matcher.suffix)
    if kind == "contains":
        return matcher.contains in value
    if kind == "safe_regex":
        try:
            return re.fullmatch(matcher.safe_regex.regex, value) is not None
        except re.error:
            return False
    return True


def node_selected(matchers: Iterable[node_pb2.NodeMatcher], record: ProxyRecord) -> bool:
    """CSDS selects nodes by NodeMatcher (node id; metadata matchers are not supported and match nothing)."""
    matchers = list(matchers)
    if not matchers:
        return True
    for matcher in matchers:
        if matcher.node_metadatas:
            continue
        if not matcher.HasField("node_id") or _string_matches(matcher.node_id, record.node_id):
            return True
    return False


def _status_of(status: TypeStatus) -> tuple[int, int, dump.UpdateFailureState | None]:
    """(config_status, client_status, error_state) of the resources last sent on one type."""
    nack = status.last_nack
    if nack is not None and nack.version == status.sent_version and status.acked_version != status.sent_version:
        error = dump.UpdateFailureState(details=nack.message, version_info=nack.version, last_update_attempt=_timestamp(nack.at))
        return csds_pb2.ERROR, dump.NACKED, error
    if status.sent_version is not None and status.acked_version == status.sent_version:
        return csds_pb2.SYNCED, dump.ACKED, None
    if status.sent_version is None:
        return csds_pb2.NOT_SENT, dump.REQUESTED, None
    return csds_pb2.STALE, dump.UNKNOWN, None


def client_config(record: ProxyRecord, include_contents: bool = True) -> csds_pb2.ClientConfig:
    """One stream as a CSDS ClientConfig with one GenericXdsConfig per resource it was sent."""
    config = csds_pb2.ClientConfig(node=base_pb2.Node(id=record.node_id, cluster=record.node_cluster))
    for type_url in ORDER:
        status = record.types.get(type_url)
        if status is None:
            continue
        config_status, client_status, error = _status_of(status)
        names = sorted(status.resources) or sorted(status.resource_names)
        for name in names:
            entry = csds_pb2.ClientConfig.GenericXdsConfig(
                type_url=type_url.value,
                name=name,
                version_info=status.sent_version or "",
                config_status=config_status,
                client_status=client_status,
            )
            stamp = _timestamp(status.acked_at if client_status == dump.ACKED else status.sent_at)
            if stamp is not None:
                entry.last_updated.CopyFrom(stamp)
            prepared = status.resources.get(name)
            if include_contents and prepared is not None:
                entry.xds_config.CopyFrom(prepared.packed)
            if error is not None:
                entry.error_state.CopyFrom(error)
            config.generic_xds_configs.append(entry)
    return config


def client_status(records: Iterable[ProxyRecord], request: csds_pb2.ClientStatusRequest) -> csds_pb2.ClientStatusResponse:
    """The answer to one ClientStatusRequest: every selected stream (two streams with one node id stay apart)."""
    return csds_pb2.ClientStatusResponse(
        config=[
            client_config(record, include_contents=not request.exclude_resource_contents)
            for record in records
            if node_selected(request.node_matchers, record)
        ]
    )


class ClientStatusService(csds_pb2_grpc.ClientStatusDiscoveryServiceServicer):
    """CSDS on the admin port, behind the admin API's authentication. Reads the registry, never changes it."""

    def __init__(self, registry: ProxySource) -> None:
        self._registry = registry

    async def FetchClientStatus(  # noqa: N802
        self, request: csds_pb2.ClientStatusRequest, context: grpc.aio.ServicerContext
    ) -> csds_pb2.ClientStatusResponse:
        return client_status(self._registry.proxies(), request)

    async def StreamClientStatus(  # noqa: N802
        self, request_iterator: AsyncIterator[csds_pb2.ClientStatusRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[csds_pb2.ClientStatusResponse]:
        async for request in request_iterator:
            yield client_status(self._registry.proxies(), request)
