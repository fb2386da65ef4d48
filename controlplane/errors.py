"""The domain's exceptions. Messages tell the user what to change."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of every error this package raises on purpose."""


class LabelError(ControlPlaneError):
    """A Docker label on a task definition is malformed; the service it declares is disabled."""

    def __init__(self, message: str, *, label: str | None = None, value: str | None = None) -> None:
        super().__init__(message)
        self.label = label
        self.value = value


class NodeError(ControlPlaneError):
    """A connecting proxy describes itself in a way we cannot serve."""


class SettingsError(ControlPlaneError):
    """A setting (flag or environment variable) is invalid."""


class EcsMetadataError(ControlPlaneError):
    """The ECS task metadata endpoint could not be read or did not describe a task."""
