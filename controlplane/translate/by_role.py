"""Mesh + proxy role -> the resources that role receives, from the role's composer."""

from __future__ import annotations

from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole
from controlplane.translate.edge import edge_resources
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.grpc_client import grpc_client_resources
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources
from controlplane.translate.sidecar import sidecar_resources


def translate(mesh: Mesh, role: ProxyRole, memo: TranslationMemo | None = None, *, edge: EdgeOptions = EdgeOptions()) -> Resources:
    """All the resources a proxy of `role` receives for `mesh` (and, for the edge, `edge`'s certificates and
    settings). With the process's `memo`, messages whose input is unchanged are the very objects of earlier
    calls; without, all are built anew."""
    memo = memo if memo is not None else TranslationMemo(max_bytes=0)
    memo.begin(mesh)
    if isinstance(role, EdgeRole):
        return edge_resources(mesh, role, memo, edge)
    if isinstance(role, SidecarRole):
        return sidecar_resources(mesh, role, memo)
    if isinstance(role, GrpcClientRole):
        return grpc_client_resources(mesh, role, memo)
    raise TypeError(f"no translation for role {role!r}")
