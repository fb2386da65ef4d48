"""`controlplane render`: a dry run. Reads task definitions from files and/or live ECS clusters (as
`serve` does), builds the mesh and prints the Envoy resources each role would receive, plus every
label problem. Exit status: 0 when the labels are valid, 1 when there are label problems, 2 on usage
errors (bad flags, unreadable files, ECS not reachable). Needs only the runtime dependencies."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from google.protobuf import json_format

from controlplane.discovery.reader import ClusterReader
from controlplane.discovery.state import ClusterState, Task, TaskDefinition
from controlplane.errors import ControlPlaneError
from controlplane.model.build import build_mesh
from controlplane.model.labels import DEFAULT_PREFIX, declaration_prefixes
from controlplane.model.host_rule import DefaultHostRule
from controlplane.translate.patch import check_service
from controlplane.model.limits import Limits
from controlplane.model.mesh import Mesh, ServiceProblem
from controlplane.proxy.roles import EdgeRole, GrpcClientRole, ProxyRole, SidecarRole
from controlplane.translate import translate
from controlplane.xds.any_types import load_any_types
from controlplane.xds.types import ORDER

FILES_CLUSTER = "(files)"


class UsageError(ControlPlaneError):
    """A mistake in how render was called."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line and exit status 2, as argparse does, raised instead
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    limits = Limits()
    parser = _Parser(prog="controlplane render", description=__doc__)
    parser.add_argument("--task-definition", dest="files", action="append", default=[], type=Path, metavar="FILE",
                        help="a task definition as DescribeTaskDefinition output or RegisterTaskDefinition input JSON (repeatable)")
    parser.add_argument("--cluster", dest="clusters", action="append", default=[], help="a live ECS cluster to read (repeatable)")
    parser.add_argument("--service", dest="services", action="append", default=[],
                        help="also render the sidecar and grpc-client roles of this service (those of services the files declare are rendered anyway)")
    parser.add_argument("--region", help="AWS region")
    parser.add_argument("--label-prefix", default=DEFAULT_PREFIX, help="Docker label prefix (default 'xds.')")
    parser.add_argument("--default-host-rule", help="serve's default host rule, e.g. '{service}.example.com' (default: '*')")
    parser.add_argument("--json", action="store_true", help="one JSON object: problems, and per role the resources")
    parser.add_argument("--format", choices=["text", "json"], default="text", help="--format json is --json")
    parser.add_argument("--role", choices=["edge", "all"], default="all", help="edge only, or every role (default)")
    parser.add_argument("--allow-warnings", action="store_true", help="exit 0 when the only problems are warnings")
    parser.add_argument("--listen-address", default="0.0.0.0", help="edge listener address to render")
    parser.add_argument("--listen-port", type=int, default=10000, help="edge listener port to render")
    parser.add_argument("--max-hosts-per-service", type=int, default=limits.max_hosts_per_service)
    parser.add_argument("--max-routes-per-service", type=int, default=limits.max_routes_per_service)
    parser.add_argument("--max-config-bytes-per-service", type=int, default=limits.max_config_bytes_per_service)
    parser.add_argument("--max-edge-routes", type=int, default=limits.max_edge_routes)
    return parser


def read_clusters(clusters: Sequence[str], reader_factory: Callable[[], ClusterReader]) -> list[ClusterState]:
    """One full read per cluster, through one reader (the task-definition cache is shared)."""
    reader = reader_factory()
    return [reader.read(cluster)[0] for cluster in clusters]


def planned_state(task_definitions: Sequence[TaskDefinition]) -> ClusterState:
    """Task definitions not yet deployed, as a view where each has one task that has not started:
    their services are declared and checked, with no endpoints, and are the newest everywhere."""
    tasks = tuple(
        Task(
            arn=f"planned/{td.family}:{td.revision}",
            cluster=FILES_CLUSTER,
            task_definition_arn=td.arn,
            group="",
            last_status="PENDING",
            desired_status="RUNNING",
            health_status="UNKNOWN",
            availability_zone="",
            container_health={},
            endpoints=(),
        )
        for td in task_definitions
    )
    return ClusterState(cluster=FILES_CLUSTER, tasks=tasks, task_definitions={td.arn: td for td in task_definitions}, synced_at=time.time())


def roles(mesh: Mesh, args: argparse.Namespace, services: Sequence[str]) -> dict[str, ProxyRole]:
    found: dict[str, ProxyRole] = {"edge": EdgeRole(listen_address=args.listen_address, listen_port=args.listen_port)}
    if args.role == "all":
        for name in sorted(set(services)):
            if mesh.service(name) is not None:
                found[f"sidecar/{name}"] = SidecarRole(service=name)
                found[f"grpc-client/{name}"] = GrpcClientRole(service=name)
    return found


def resources(mesh: Mesh, role: ProxyRole) -> dict[str, dict[str, Any]]:
    """The resources of one role in protobuf's JSON mapping, by type (CDS, EDS, LDS, RDS, SDS) and name;
    types the role gets nothing of are left out."""
    translated = translate(mesh, role)
    return {
        type_url.short: {
            name: json_format.MessageToDict(message, preserving_proto_field_name=True)
            for name, message in sorted(translated.of(type_url).items())
        }
        for type_url in ORDER
        if translated.of(type_url)
    }


def problem_dict(p: ServiceProblem) -> dict[str, Any]:
    return {
        "severity": p.severity,
        "kind": p.kind.value,
        "service": p.service,
        "task_definition": p.task_definition,
        "container": p.container,
        "label": p.label,
        "value": p.value,
        "message": p.message,
    }


def render(
    argv: Sequence[str], *, reader_factory: Callable[[], ClusterReader] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    args = parser().parse_args(list(argv))
    out, err = out or sys.stdout, err or sys.stderr
    if not args.files and not args.clusters:
        raise UsageError("give --task-definition FILE and/or --cluster NAME")
    limits = Limits(
        max_hosts_per_service=_positive(args.max_hosts_per_service, "--max-hosts-per-service"),
        max_routes_per_service=_positive(args.max_routes_per_service, "--max-routes-per-service"),
        max_config_bytes_per_service=_positive(args.max_config_bytes_per_service, "--max-config-bytes-per-service"),
        max_edge_routes=_positive(args.max_edge_routes, "--max-edge-routes"),
    )
    states: list[ClusterState] = []
    if args.clusters:
        states = read_clusters(args.clusters, reader_factory or (lambda: _default_reader(args.region)))
    live_revisions: dict[str, int] = {}
    for state in states:
        for td in state.task_definitions.values():
            live_revisions[td.family] = max(live_revisions.get(td.family, 0), td.revision)
    from controlplane.cli.task_definition_files import load_task_definition

    planned = [load_task_definition(path, live_revisions) for path in args.files]
    if planned:
        states.append(planned_state(planned))
    try:
        host_rule = DefaultHostRule.parse(args.default_host_rule) if args.default_host_rule else None
    except ValueError as reason:
        raise UsageError(f"--default-host-rule: {reason}") from None
    mesh = build_mesh(states, args.label_prefix, limits, host_rule=host_rule, resource_check=check_service)

    planned_names = {td.display_name for td in planned}
    declared = [
        container.labels[p + "service"].strip()
        for td in planned for container in td.containers for p in declaration_prefixes(container.labels, args.label_prefix)
    ]
    load_any_types()  # the JSON mapping must know every type packed inside an Any
    rendered = {name: resources(mesh, role) for name, role in roles(mesh, args, [*declared, *args.services]).items()}
    # With files, what counts is what they declare; the live clusters' own problems are listed, not counted.
    counted = [p for p in mesh.problems if not planned or p.task_definition in planned_names]
    failing = [p for p in counted if p.severity == "error" or not args.allow_warnings]

    if args.json or args.format == "json":
        out.write(json.dumps({"problems": [problem_dict(p) for p in mesh.problems], "roles": rendered}, indent=2, sort_keys=True) + "\n")
    else:
        for role_name, by_type in rendered.items():
            out.write(f"# role {role_name}\n")
            for type_name, by_name in by_type.items():
                for name, resource in by_name.items():
                    out.write(f"## {type_name} {name}\n{json.dumps(resource, indent=2, sort_keys=True)}\n")
    for problem in mesh.problems:
        print(f"{problem.severity}: {problem.message} [{problem.kind.value}]", file=err)
    errors = sum(1 for p in counted if p.severity == "error")
    print(
        f"controlplane render: {len(counted)} label problems ({errors} errors, {len(counted) - errors} warnings)"
        + (f" in {', '.join(sorted(planned_names))}" if planned else ""),
        file=err,
    )
    return 1 if failing else 0


def _positive(value: int, flag: str) -> int:
    if value < 1:
        raise UsageError(f"{flag} {value}: expected a positive integer")
    return value


def _default_reader(region: str | None) -> ClusterReader:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "adaptive", "max_attempts": 5}, connect_timeout=5, read_timeout=20)
    session = boto3.session.Session(region_name=region)
    return ClusterReader(session.client("ecs", config=config), session.client("ec2", config=config), ssm=session.client("ssm", config=config))


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return render(sys.argv[1:] if argv is None else argv)
    except ControlPlaneError as error:
        print(f"controlplane render: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # the dry run reports, it does not crash with a trace
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, (BotoCoreError, ClientError)):
            print(f"controlplane render: cannot read ECS: {error}", file=sys.stderr)
        else:
            print(f"controlplane render: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 2
