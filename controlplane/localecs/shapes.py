"""Keeping echoed user input inside botocore's output shapes.

Task definitions are stored as the caller sent them; before we return one we drop any
key that the ECS service model does not define for the output, so boto3 never sees
an unknown key.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape


@lru_cache(maxsize=4)
def service_model(name: str) -> ServiceModel:
    """botocore's model of service ``name`` (cached: loading it takes ~100 ms)."""
    return botocore.session.get_session().get_service_model(name)


def prune(value: Any, shape: Shape) -> Any:
    """``value`` with every key unknown to ``shape`` removed, recursively."""
    if shape.type_name == "structure" and isinstance(value, dict):
        members = shape.members  # type: ignore[attr-defined]
        return {k: prune(v, members[k]) for k, v in value.items() if k in members and v is not None}
    if shape.type_name == "list" and isinstance(value, list):
        return [prune(v, shape.member) for v in value]  # type: ignore[attr-defined]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: prune(v, shape.value) for k, v in value.items()}  # type: ignore[attr-defined]
    return value


def prune_ecs(value: dict[str, Any], shape_name: str) -> dict[str, Any]:
    """Prune ``value`` to the ECS shape named ``shape_name``."""
    result = prune(value, service_model("ecs").shape_for(shape_name))
    assert isinstance(result, dict)
    return result
