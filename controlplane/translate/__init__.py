"""Translate: Mesh + proxy role -> Envoy resources (xds-protos messages). Pure and deterministic."""

from controlplane.translate.resources import Resources, translate

__all__ = ["Resources", "translate"]
