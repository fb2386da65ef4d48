"""Translate: Mesh + proxy role -> Envoy resources (xds-protos messages). Pure and deterministic."""

from controlplane.translate.by_role import translate, translate_endpoints, translate_settings
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.resources import Resources

__all__ = ["Resources", "TranslationMemo", "translate", "translate_endpoints", "translate_settings"]
