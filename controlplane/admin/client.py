"""`controlplane status|services|proxies|config`: the admin API as readable tables or JSON."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import grpc
from google.protobuf import json_format

from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc

DEFAULT_ADMIN = "127.0.0.1:18001"


def add_client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--admin", default=None, help=f"admin API HOST:PORT (default {DEFAULT_ADMIN}, or CONTROLPLANE_ADMIN)")
    parser.add_argument("--token", default=None, help="bearer token; visible to local users in /proc: prefer --token-file or CONTROLPLANE_ADMIN_TOKEN")
    parser.add_argument("--token-file", default=None, help="file holding the bearer token (or CONTROLPLANE_ADMIN_TOKEN_FILE)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the admin API (default 10)")
    parser.add_argument("--tls-ca", type=Path, default=None, help="PEM CA that verifies the admin API (turns TLS on; or CONTROLPLANE_ADMIN_TLS_CA)")
    parser.add_argument("--tls-cert", type=Path, default=None, help="PEM client certificate for mTLS (or CONTROLPLANE_ADMIN_TLS_CERT)")
    parser.add_argument("--tls-key", type=Path, default=None, help="PEM client key for mTLS (or CONTROLPLANE_ADMIN_TLS_KEY)")
    parser.add_argument("--tls-server-name", default=None, help="name to verify in the admin API's certificate (default: the host)")


class ClientError(Exception):
    """A mistake in how the CLI was asked to reach the admin API; printed as one line."""


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as error:
        raise ClientError(f"{flag} {path}: {error.strerror or error}") from None


def channel_for(args: argparse.Namespace, target: str) -> grpc.Channel:
    """Plaintext, TLS (a CA given) or mTLS (a client certificate and key too) to the admin API."""
    import os

    def setting(value: Path | None, env: str) -> Path | None:
        return value if value is not None else (Path(os.environ[env]) if os.environ.get(env) else None)

    ca = setting(args.tls_ca, "CONTROLPLANE_ADMIN_TLS_CA")
    cert = setting(args.tls_cert, "CONTROLPLANE_ADMIN_TLS_CERT")
    key = setting(args.tls_key, "CONTROLPLANE_ADMIN_TLS_KEY")
    options: list[tuple[str, Any]] = [("grpc.enable_http_proxy", 0)]
    if ca is None:
        if cert is not None or key is not None:
            raise ClientError("--tls-cert/--tls-key need --tls-ca (the CA that verifies the admin API)")
        return grpc.insecure_channel(target, options=options)
    if (cert is None) != (key is None):
        raise ClientError("mTLS needs both --tls-cert and --tls-key")
    if args.tls_server_name:
        options.append(("grpc.ssl_target_name_override", args.tls_server_name))
    credentials = grpc.ssl_channel_credentials(_read(ca, "--tls-ca"), _read(key, "--tls-key"), _read(cert, "--tls-cert"))
    return grpc.secure_channel(target, credentials, options=options)


def _stub(args: argparse.Namespace) -> tuple[admin_pb2_grpc.AdminStub, list[tuple[str, str]], grpc.Channel]:
    import os

    target = args.admin or os.environ.get("CONTROLPLANE_ADMIN", DEFAULT_ADMIN)
    token = args.token or _token_from_file(args.token_file or os.environ.get("CONTROLPLANE_ADMIN_TOKEN_FILE")) or os.environ.get("CONTROLPLANE_ADMIN_TOKEN")
    channel = channel_for(args, target)
    metadata = [("authorization", f"Bearer {token}")] if token else []
    return admin_pb2_grpc.AdminStub(channel), metadata, channel


def _token_from_file(path: str | None) -> str | None:
    data = _read(Path(path), "--token-file") if path else None
    if data is None:
        return None
    return data.decode(errors="replace").strip() or None


def _as_dict(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in cells)


def _age(stamp: Any) -> str:
    if not stamp.seconds:
        return "-"
    seconds = max(0.0, time.time() - stamp.ToNanoseconds() / 1e9)
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f}m"


def show_status(stub: admin_pb2_grpc.AdminStub, metadata: list[tuple[str, str]], args: argparse.Namespace) -> str:
    return format_status(stub.GetStatus(api.GetStatusRequest(), metadata=metadata, timeout=args.timeout), args)


def format_status(status: api.Status, args: argparse.Namespace) -> str:
    if args.json:
        return json.dumps(_as_dict(status), indent=2)
    head = (
        f"controlplane {status.version}  ready={str(status.ready).lower()}{'  DEGRADED' if status.degraded else ''}"
        f"  mesh revision {status.mesh_revision}  config age {status.config_age_seconds:.0f}s"
        f" (not ready after {status.readiness_window_seconds:.0f}s)\n"
        f"{status.services} services, {status.endpoints} endpoints, {status.proxies} proxies, {status.problems} label problems\n"
    )
    for failure in status.failures:
        head += f"{failure.stage} failing since {_age(failure.since)} ago ({failure.consecutive}x), serving the last good config: {failure.error}\n"
    rows = [
        (
            c.cluster,
            c.tasks,
            f"{c.view_age_seconds:.1f}s" if c.last_success.seconds else "never read",
            f"{c.last_sync_seconds * 1000:.0f}ms",
            sum(c.last_sync_api_calls.values()),
            c.consecutive_failures,
            c.last_error or "-",
        )
        for c in status.clusters
    ]
    out = head + _table(["CLUSTER", "TASKS", "VIEW AGE", "LAST SYNC", "API CALLS", "FAILURES", "LAST ERROR"], rows)
    if status.HasField("ecs_requests"):
        e = status.ecs_requests
        operations = ", ".join(f"{name} {count}" for name, count in sorted(e.by_operation.items(), key=lambda item: (-item[1], item[0])))
        out += (
            f"\nECS requests (this replica): {e.last_minute} in the last minute, cap {e.limit_per_second:g}/s (burst {e.burst}), "
            f"waited {e.waited_seconds:.1f}s; since start: {operations or 'none'}"
        )
    if status.draining:
        out += "\nDRAINING: this replica no longer listens and is closing its xDS streams"
    return out


def _route_text(route: api.Route) -> str:
    """hosts + prefix for HTTP; `tcp:<port>` and its TLS SNI names (none: the port's catch-all) for TCP."""
    if route.path_prefix:
        return f"{','.join(route.hosts)}{route.path_prefix}"
    if not route.port:
        return "-"
    return f"tcp:{route.port}" + (f" sni={','.join(route.hosts)}" if route.hosts else "")


def show_services(stub: admin_pb2_grpc.AdminStub, metadata: list[tuple[str, str]], args: argparse.Namespace) -> str:
    response = stub.ListServices(api.ListServicesRequest(), metadata=metadata, timeout=args.timeout)
    if args.json:
        return json.dumps(_as_dict(response), indent=2)
    rows = []
    for s in response.services:
        counts = {h: sum(1 for e in s.endpoints if e.health == h) for h in ("healthy", "unhealthy", "draining")}
        route = _route_text(s.route)
        errors = sum(1 for p in s.problems if p.severity == "error")
        rows.append(
            (s.name, s.state, s.protocol or "-", route, counts["healthy"], counts["draining"], counts["unhealthy"], errors, len(s.problems) - errors)
        )
    out = _table(["SERVICE", "STATE", "PROTOCOL", "ROUTE", "HEALTHY", "DRAINING", "UNHEALTHY", "ERRORS", "WARNINGS"], rows)
    messages = dict.fromkeys(_problem_line(p) for s in response.services for p in s.problems)
    messages.update(dict.fromkeys(_problem_line(p) for p in response.problems))
    if messages:
        out += "\n\n" + "\n".join(messages)
    if args.endpoints:
        for s in response.services:
            if s.endpoints:
                out += f"\n\n{s.name}:\n" + _table(
                    ["ADDRESS", "HEALTH", "TASK", "TASK DEFINITION", "CLUSTER", "ZONE"],
                    [(f"{e.address}:{e.port}", e.health, e.task_id, e.task_definition, e.cluster, e.availability_zone or "-") for e in s.endpoints],
                )
    return out


def _problem_line(problem: Any) -> str:
    kind = f" [{problem.kind}]" if problem.kind else ""
    return f"{problem.severity.upper()}: {problem.message}{kind}"


def show_proxies(stub: admin_pb2_grpc.AdminStub, metadata: list[tuple[str, str]], args: argparse.Namespace) -> str:
    response = stub.ListProxies(api.ListProxiesRequest(), metadata=metadata, timeout=args.timeout)
    if args.json:
        return json.dumps(_as_dict(response), indent=2)
    rows = []
    nacks = []
    for p in response.proxies:
        for t in p.types:
            in_sync = "yes" if t.version_sent and t.version_sent == t.version_acked else ("NACKED" if t.last_nack.error and t.last_nack.version == t.version_sent else "pending")
            rows.append((p.node_id, p.stream_id, p.identity or "-", p.role, p.peer, _age(p.connected_since), t.type, t.version_sent or "-", t.version_acked or "-", in_sync, t.nacks))
            if t.last_nack.error:
                nacks.append(f"{p.node_id} {t.type} rejected {t.last_nack.version}: {t.last_nack.error}")
    out = _table(["NODE", "STREAM", "IDENTITY", "ROLE", "PEER", "UP", "TYPE", "SENT", "ACKED", "IN SYNC", "NACKS"], rows)
    if nacks:
        out += "\n\nLast NACKs:\n" + "\n".join(nacks)
    return out


def show_config(stub: admin_pb2_grpc.AdminStub, metadata: list[tuple[str, str]], args: argparse.Namespace) -> str:
    request = api.GetProxyConfigRequest(node_id=args.node_id, stream_id=args.stream or 0)
    config = stub.GetProxyConfig(request, metadata=metadata, timeout=args.timeout)
    resources = [
        {"type": r.type, "name": r.name, "version": r.version, "resource": json.loads(r.json)} for r in config.resources
    ]
    if args.json:
        return json.dumps(
            {"node_id": config.node_id, "stream_id": config.stream_id, "identity": config.identity, "role": config.role, "resources": resources},
            indent=2,
        )
    out = [f"# node {config.node_id} (stream {config.stream_id}, {config.role}): {len(resources)} resources"]
    for r in resources:
        out.append(f"\n# {r['type']} {r['name']} version {r['version']}")
        out.append(json.dumps(r["resource"], indent=2))
    return "\n".join(out)


COMMANDS: dict[str, Callable[[admin_pb2_grpc.AdminStub, list[tuple[str, str]], argparse.Namespace], str]] = {
    "status": show_status,
    "services": show_services,
    "proxies": show_proxies,
    "config": show_config,
}


NOT_READY = 3  # `controlplane status` as a readiness probe: 0 only when every watched cluster has been read


def run(args: argparse.Namespace) -> int:
    try:
        stub, metadata, channel = _stub(args)
    except ClientError as error:
        print(f"controlplane {args.command}: {error}", file=sys.stderr)
        return 2
    try:
        if args.command != "status":
            print(COMMANDS[args.command](stub, metadata, args))
        else:
            status = stub.GetStatus(api.GetStatusRequest(), metadata=metadata, timeout=args.timeout)
            print(format_status(status, args))
            never = [c.cluster for c in status.clusters if not c.last_success.seconds]
            if not status.ready or never:
                print(f"controlplane status: not ready ({'never read: ' + ', '.join(never) if never else 'no view published yet'})", file=sys.stderr)
                return NOT_READY
    except grpc.RpcError as error:
        print(f"controlplane {args.command}: {error.code().name}: {_explain(error, args)}", file=sys.stderr)
        return 1
    finally:
        channel.close()
    return 0


def _explain(error: grpc.RpcError, args: argparse.Namespace) -> str:
    """gRPC's detail on one line, with what to change when the cause is likely a setting."""
    details = " ".join((error.details() or "").split())
    code = error.code()
    if code == grpc.StatusCode.UNAVAILABLE and args.tls_ca is None:
        return f"{details} (is the admin API running at that address? if it serves TLS, pass --tls-ca)"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return f"{details} (pass --token or set CONTROLPLANE_ADMIN_TOKEN)"
    return details
