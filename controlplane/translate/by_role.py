"""Mesh + proxy role -> the resources that role receives, from the role's composer."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole
from controlplane.translate import endpoint
from controlplane.translate.edge import edge_resources, edge_settings_changes
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.grpc_client import grpc_client_load_assignment, grpc_client_resources
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.translate.sidecar import sidecar_resources


def translate(mesh: Mesh, role: ProxyRole, memo: TranslationMemo | None = None, *, edge: EdgeOptions = EdgeOptions()) -> Resources:
    """All the resources a proxy of `role` receives for `mesh` (and, for the edge, `edge`'s certificates and
    settings). With the process's `memo`, messages whose input is unchanged are the very objects of earlier
    calls; without, all are built anew."""
    memo = memo if memo is not None else TranslationMemo(max_bytes=0)
    if isinstance(role, EdgeRole):
        return edge_resources(mesh, role, memo, edge)
    if isinstance(role, SidecarRole):
        return sidecar_resources(mesh, role, memo)
    if isinstance(role, GrpcClientRole):
        return grpc_client_resources(mesh, role, memo)
    raise TypeError(f"no translation for role {role!r}")


def translate_endpoints(mesh: Mesh, role: ProxyRole, names: Iterable[str], memo: TranslationMemo | None = None) -> dict[str, Message]:
    """The ClusterLoadAssignments `role` receives for the services `names` (ones it receives):
    what translate(mesh, role) holds for them, built without the rest, for a change of endpoints
    alone (see Resources.depends_on)."""
    memo = memo if memo is not None else TranslationMemo(max_bytes=0)
    services = [mesh.by_name[name] for name in names if name in mesh.by_name]
    if isinstance(role, GrpcClientRole):
        return {s.name: grpc_client_load_assignment(memo, s) for s in services}
    return {s.name: endpoint.memoised_service_load_assignment(memo, s) for s in services}


def translate_settings(
    old: Mesh, mesh: Mesh, role: ProxyRole, names: Iterable[str], memo: TranslationMemo | None = None
) -> Resources | None:
    """For a change of the settings of services `names` (in both meshes): the resources of
    translate(mesh, role) the change can reach, built without the rest; None when the
    role must be translated in full. The edge, which depends on every service, has this path;
    other roles are small."""
    memo = memo if memo is not None else TranslationMemo(max_bytes=0)
    if isinstance(role, EdgeRole):
        return edge_settings_changes(old, mesh, names, role, memo)
    return None
