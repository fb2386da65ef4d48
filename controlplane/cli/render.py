"""`controlplane render`: a dry run. Reads ECS once (as `serve` does), builds the mesh and prints the
Envoy resources a proxy would receive, plus every label problem. Exit status 1 on any error."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml
from google.protobuf import json_format

from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.model.labels import DEFAULT_PREFIX
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import translate
from controlplane.xds.types import ORDER


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="controlplane render", description=__doc__)
    parser.add_argument("--role", choices=["edge"], default="edge")
    parser.add_argument("--cluster", dest="clusters", action="append", required=True, help="ECS cluster to read (repeatable)")
    parser.add_argument("--region", help="AWS region")
    parser.add_argument("--label-prefix", default=DEFAULT_PREFIX, help="Docker label prefix (default 'xds.')")
    parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
    parser.add_argument("--listen-address", default="0.0.0.0", help="edge listener address to render")
    parser.add_argument("--listen-port", type=int, default=10000, help="edge listener port to render")
    return parser


def read_clusters(clusters: Sequence[str], reader_factory: Callable[[], ClusterReader]) -> list[ClusterState]:
    """One full read per cluster, through one reader (the task-definition cache is shared)."""
    reader = reader_factory()
    return [reader.read(cluster)[0] for cluster in clusters]


def document(mesh: Mesh, role: EdgeRole) -> dict[str, Any]:
    resources = translate(mesh, role)
    rendered: dict[str, Any] = {
        type_url.short: {
            name: json_format.MessageToDict(message, preserving_proto_field_name=True)
            for name, message in sorted(resources.of(type_url).items())
        }
        for type_url in ORDER
    }
    rendered["problems"] = [
        {
            "severity": p.severity,
            "service": p.service,
            "task_definition": p.task_definition,
            "container": p.container,
            "label": p.label,
            "value": p.value,
            "message": p.message,
        }
        for p in mesh.problems
    ]
    # Round-trip through JSON: MessageToDict gives OrderedDicts that safe_dump refuses.
    return json.loads(json.dumps(rendered))  # type: ignore[no-any-return]


def render(
    argv: Sequence[str], *, reader_factory: Callable[[], ClusterReader] | None = None, out: TextIO | None = None
) -> int:
    args = parser().parse_args(list(argv))
    out = out or sys.stdout
    if reader_factory is None:
        reader_factory = lambda: _default_reader(args.region)
    states = read_clusters(args.clusters, reader_factory)
    mesh = build_mesh(states, args.label_prefix)
    rendered = document(mesh, EdgeRole(listen_address=args.listen_address, listen_port=args.listen_port))
    if args.format == "json":
        out.write(json.dumps(rendered, indent=2, sort_keys=True) + "\n")
    else:
        out.write(yaml.safe_dump(rendered, sort_keys=True, default_flow_style=False))
    for problem in mesh.problems:
        print(f"{problem.severity}: {problem.message}", file=sys.stderr)
    return 1 if any(p.severity == "error" for p in mesh.problems) else 0


def _default_reader(region: str | None) -> ClusterReader:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
    session = boto3.session.Session(region_name=region)
    return ClusterReader(session.client("ecs", config=config), session.client("ec2", config=config), ssm=session.client("ssm", config=config))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return render(sys.argv[1:] if argv is None else argv)
    except Exception as error:  # the dry run reports, it does not crash with a trace
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, (BotoCoreError, ClientError)):
            print(f"controlplane render: cannot read ECS: {error}", file=sys.stderr)
            return 2
        raise
