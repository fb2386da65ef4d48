"""Services by name, built once per mesh for every role that looks services up."""

from __future__ import annotations

from controlplane.model.mesh import Mesh, Service
from controlplane.translate.memo import TranslationMemo


def services_by_name(mesh: Mesh, memo: TranslationMemo) -> dict[str, Service]:
    """Name -> service. A fleet has a role per service, and scanning the whole mesh for each of
    them would make a rebuild quadratic. Read-only: every role shares it."""
    return memo.for_mesh("services_by_name", mesh, lambda: {s.name: s for s in mesh.services})
