"""The `controlplane` command: its entry point and the subcommands that run in-process (render)."""

from controlplane.cli.main import main

__all__ = ["main"]
