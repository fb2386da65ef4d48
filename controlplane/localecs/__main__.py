"""``python -m controlplane.localecs``: same as ``controlplane local-ecs``."""

from __future__ import annotations

from controlplane.localecs.main import main

raise SystemExit(main())
