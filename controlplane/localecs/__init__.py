"""A local stand-in for the AWS ECS API whose tasks are real local processes.

Plain boto3 drives it unchanged (``endpoint_url=server.url``); see docs/local-ecs.md.
"""

from __future__ import annotations

from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.main import main
from controlplane.localecs.server import LocalEcsServer

__all__ = ["LocalEcs", "LocalEcsServer", "main"]
