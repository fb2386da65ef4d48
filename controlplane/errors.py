"""The domain's exceptions. Messages tell the user what to change."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of every error this package raises on purpose."""


class LabelError(ControlPlaneError):
    """A Docker label on a task definition is malformed; the service it declares is disabled."""

    def __init__(self, message: str, *, label: str | None = None, value: str | None = None, kind: str = "invalid_value") -> None:
        super().__init__(message)
        self.label = label
        self.value = value
        self.kind = kind


class NodeError(ControlPlaneError):
    """A connecting proxy describes itself in a way we cannot serve."""


class SettingsError(ControlPlaneError):
    """A setting (flag or environment variable) is invalid."""


class RoleLimitError(NodeError):
    """A stream would open a role beyond the number of live roles the control plane serves."""


class EcsMetadataError(ControlPlaneError):
    """The ECS task metadata endpoint could not be read or did not describe a task."""
