"""The `controlplane` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any, Sequence

from botocore.exceptions import NoRegionError
from pydantic import ValidationError

from controlplane import __version__
from controlplane.errors import ControlPlaneError

# Subcommands that parse their own arguments (dispatched before argparse; listed here so --help shows them).
APART_COMMANDS = {
    "render": "print the Envoy resources that labels produce, before deploying (see `controlplane render --help`)",
    "demo": "local ECS + control plane + real Envoy: per-call balance, scale-out, drain",
    "local-ecs": "run the local ECS API (tests and demos)",
}


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        # The reader went away (`controlplane services | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _main(args: list[str]) -> int:
    import os

    # grpc-core writes its own plain-text lines to stderr, which breaks JSON logs and doubles every error
    # we already report; they stay available by setting GRPC_VERBOSITY explicitly.
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    if args and args[0] == "local-ecs":
        from controlplane.localecs import main as local_ecs_main

        return local_ecs_main(args[1:])
    if args and args[0] == "demo":
        from controlplane.demo.run import main as demo_main

        return demo_main(args[1:])
    if args and args[0] == "render":
        from controlplane.cli.render import main as render_main

        return render_main(args[1:])

    parser = argparse.ArgumentParser(prog="controlplane", description=__doc__)
    parser.add_argument("--version", action="version", version=f"controlplane {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve",
        help="watch ECS and serve xDS to Envoy",
        description="Watch ECS and serve xDS. Every setting is a flag, a CONTROLPLANE_* variable or a key of the --config file "
        "(highest first).",
    )
    serve.add_argument("--config", type=Path, default=None, help="TOML file of settings, keys as the flags without -- (env: CONTROLPLANE_CONFIG)")
    serve_settings = settings_flags(serve)

    # No abbreviations: `--xds-token SECRET` must not be taken for `--xds-token-file SECRET`.
    boot = commands.add_parser("bootstrap", help="print an Envoy bootstrap for a proxy of this control plane", allow_abbrev=False)
    boot.add_argument("--role", choices=["edge", "sidecar", "grpc-client"], default="edge")
    boot.add_argument("--node-id", help="node.id (required unless --from-ecs-metadata: then <cluster>/<task id>)")
    boot.add_argument(
        "--from-ecs-metadata",
        action="store_true",
        help="inside an ECS task: node id, availability zone and (sidecar, grpc-client) service from the task metadata endpoint v4",
    )
    boot.add_argument("--xds", action="append", required=True, help="control plane HOST:PORT (repeatable)")
    boot.add_argument("--service", help="sidecar, grpc-client: the ECS service (xds.service) this proxy or client belongs to")
    boot.add_argument("--listen-port", type=int, help="edge: port of the edge listener")
    boot.add_argument("--listen-address", default="0.0.0.0", help="edge: address of the edge listener")
    boot.add_argument("--outbound-port", type=int, default=15001, help="sidecar: port the app calls its upstreams on")
    boot.add_argument("--outbound-address", default="127.0.0.1", help="sidecar: address of the outbound listener")
    boot.add_argument("--inbound-port", type=int, help="sidecar: port of an inbound listener in front of the app")
    boot.add_argument("--inbound-address", default="0.0.0.0", help="sidecar: address of the inbound listener")
    boot.add_argument("--app-port", type=int, help="sidecar: the app's port, behind the inbound listener")
    boot.add_argument("--app-address", default="127.0.0.1", help="sidecar: the app's address")
    boot.add_argument("--admin-address", default="127.0.0.1")
    boot.add_argument("--admin-port", type=int, default=9901)
    boot.add_argument("--node-cluster", default="edge", help="edge: Envoy node.cluster (for stats and grouping)")
    boot.add_argument("--xds-tls-ca", help="PEM CA file that verifies the control plane (turns TLS on)")
    boot.add_argument("--xds-tls-cert", help="PEM client certificate for mTLS to the control plane")
    boot.add_argument("--xds-tls-key", help="PEM client key for mTLS to the control plane")
    boot.add_argument("--xds-tls-sni", help="server name to send and verify (default: none)")
    boot.add_argument("--xds-tls-server-san", help="SAN the control plane's certificate must carry (default: --xds-tls-sni); a value with :// is a URI SAN, else DNS")
    boot.add_argument("--xds-token-file", help="file holding this proxy's xDS bearer token (or CONTROLPLANE_XDS_TOKEN); written into the bootstrap")
    boot.add_argument("--zone", help="the proxy's availability zone (node locality), e.g. us-east-1a")
    boot.add_argument("--local-service", help="edge, zone-aware balancing: the ECS service (xds.service) whose tasks are this proxy's own fleet; needs --zone")
    boot.add_argument("--zone-aware", action="store_true", help="sidecar: zone-aware balancing with the sidecar's own service as its fleet; needs a zone")
    boot.add_argument("--max-downstream-connections", type=int, default=50_000, help="Envoy, overload manager: most client connections at once (default 50000)")
    boot.add_argument("--max-heap-bytes", type=int, help="Envoy, overload manager: shed load as the heap nears this size (e.g. the task's memory)")

    from controlplane.admin.client import COMMANDS, add_client_arguments

    helps = {
        "status": "per ECS cluster: view age, last sync, API calls, errors",
        "services": "services, their routes, endpoints and label problems",
        "proxies": "connected proxies and what each ACKed or NACKed",
        "config": "the exact Envoy resources a node receives",
    }
    for name in COMMANDS:
        sub = commands.add_parser(name, help=helps[name])
        add_client_arguments(sub)
        if name == "config":
            sub.add_argument("node_id", metavar="NODE_ID")
            sub.add_argument("--stream", type=int, help="the stream (from `proxies`) when several claim NODE_ID; default the newest")
        if name == "services":
            sub.add_argument("--endpoints", action="store_true", help="also list every endpoint")

    for name, text in APART_COMMANDS.items():
        commands.add_parser(name, help=text, add_help=False)

    parsed = parser.parse_args(args)
    if parsed.command in COMMANDS:
        from controlplane.admin.client import run as run_client

        return run_client(parsed)
    try:
        if parsed.command == "serve":
            return _serve(parsed, serve_settings, args)
        if parsed.command == "bootstrap":
            return _bootstrap(parsed)
    except ControlPlaneError as error:
        print(f"controlplane: {error}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {parsed.command}")
    return 2


def _bootstrap(parsed: argparse.Namespace) -> int:
    from controlplane.proxy.bootstrap import ProxyOptions, XdsAddress, XdsTls, edge_bootstrap, grpc_client_bootstrap, sidecar_bootstrap, xds_token
    from controlplane.errors import SettingsError

    tls = None
    if parsed.xds_tls_ca:
        tls = XdsTls(parsed.xds_tls_ca, parsed.xds_tls_cert, parsed.xds_tls_key, parsed.xds_tls_sni, parsed.xds_tls_server_san)
    elif parsed.xds_tls_cert or parsed.xds_tls_key or parsed.xds_tls_server_san:
        raise SettingsError("--xds-tls-cert/--xds-tls-key/--xds-tls-server-san need --xds-tls-ca (the CA that verifies the control plane)")
    token = xds_token(parsed.xds_token_file)
    if token is not None and parsed.role == "grpc-client":
        raise SettingsError("proxyless gRPC clients authenticate with a client certificate (--xds-tls-cert, --xds-tls-key), not a token")
    if token is not None and tls is None:
        print("controlplane bootstrap: warning: the xDS token travels in plaintext without --xds-tls-ca", file=sys.stderr)
    xds = [XdsAddress.parse(text) for text in parsed.xds]
    zone = parsed.zone
    if parsed.from_ecs_metadata:
        from controlplane.model.labels import DEFAULT_PREFIX
        from controlplane.proxy.ecs_metadata import read_task_metadata

        task = read_task_metadata()
        zone = zone or task.availability_zone
        parsed.node_id = parsed.node_id or task.node_id
        # The app's own labels name its service and port: the sidecar needs no copy of them.
        parsed.service = parsed.service or task.label(f"{DEFAULT_PREFIX}service")
        if parsed.inbound_port is not None and parsed.app_port is None and (port := task.label(f"{DEFAULT_PREFIX}port")):
            parsed.app_port = int(port) if port.isdigit() else None
    if not parsed.node_id:
        raise SettingsError("--node-id is required (or --from-ecs-metadata inside an ECS task)")
    local_service = parsed.local_service
    if parsed.zone_aware:
        if parsed.role != "sidecar":
            raise SettingsError("--zone-aware is for --role sidecar; an edge names its own fleet with --local-service NAME")
        if not zone:
            raise SettingsError("--zone-aware needs the proxy's zone: --zone, or --from-ecs-metadata where the task reports its AvailabilityZone")
        local_service = parsed.service
    proxy = ProxyOptions(
        zone=zone or None,
        local_service=local_service,
        max_downstream_connections=parsed.max_downstream_connections,
        max_heap_bytes=parsed.max_heap_bytes,
    )
    config: dict[str, object]
    if parsed.role == "edge":
        if parsed.listen_port is None:
            raise SettingsError("--listen-port is required for --role edge")
        config = edge_bootstrap(
            tls=tls,
            node_id=parsed.node_id,
            xds=xds,
            listen_port=parsed.listen_port,
            listen_address=parsed.listen_address,
            admin_address=parsed.admin_address,
            admin_port=parsed.admin_port,
            node_cluster=parsed.node_cluster,
            token=token,
            proxy=proxy,
        )
    elif parsed.role == "sidecar":
        config = sidecar_bootstrap(
            tls=tls,
            node_id=parsed.node_id,
            xds=xds,
            service=parsed.service or "",
            outbound_port=parsed.outbound_port,
            outbound_address=parsed.outbound_address,
            inbound_port=parsed.inbound_port,
            inbound_address=parsed.inbound_address,
            app_port=parsed.app_port,
            app_address=parsed.app_address,
            admin_address=parsed.admin_address,
            admin_port=parsed.admin_port,
            token=token,
            proxy=proxy,
        )
    else:
        config = grpc_client_bootstrap(node_id=parsed.node_id, xds=xds, service=parsed.service or "", tls=tls, zone=zone or None)
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _serve(parsed: argparse.Namespace, flags: Any, argv: Sequence[str] = ()) -> int:
    from controlplane.app import ControlPlane
    from controlplane.logs import configure_logging
    from controlplane.settings import load_settings

    import os

    config_file = parsed.config or (Path(os.environ["CONTROLPLANE_CONFIG"]) if os.environ.get("CONTROLPLANE_CONFIG") else None)
    if config_file is not None and not config_file.is_file():
        print(f"controlplane serve: --config {config_file}: no such file", file=sys.stderr)
        return 2
    try:
        settings = load_settings(flags(parsed_args=parsed), config_file)
    except ValidationError as error:
        for item in error.errors():
            print(f"controlplane serve: {setting_name(item['loc'])}: {item['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if any(arg == "--admin-token" or arg.startswith("--admin-token=") for arg in argv):
        import structlog

        log = structlog.get_logger()
        log.warning(
            "settings.secret_in_argv",
            flag="--admin-token",
            why="every local user can read /proc/PID/cmdline",
            instead="--admin-token-file or CONTROLPLANE_ADMIN_TOKEN",
        )

    async def run() -> None:
        plane = ControlPlane(settings)
        stop = asyncio.Event()
        received: list[int] = []
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            received.append(signum)
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await plane.start()
            await stop.wait()
            # SIGTERM (ECS stopping the task): move the proxies away gently first. SIGINT (a person
            # at a terminal): stop now.
            if received[0] == signal.SIGTERM:
                await plane.drain()
        finally:
            await plane.stop()

    try:
        asyncio.run(run())
    except ControlPlaneError as error:
        print(f"controlplane serve: {error}", file=sys.stderr)
        return 2
    except NoRegionError:
        print("controlplane serve: no AWS region: pass --region, or set CONTROLPLANE_REGION or AWS_REGION", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"controlplane serve: cannot listen: {error.strerror or error} (check --metrics-port and --dashboard-port)", file=sys.stderr)
        return 2
    except RuntimeError as error:
        # grpc's bind failure: "Failed to bind to address HOST:PORT; set GRPC_VERBOSITY=..."
        if not str(error).startswith("Failed to bind"):
            raise
        where = str(error).split(";", 1)[0].removeprefix("Failed to bind to address ").strip()
        print(f"controlplane serve: cannot listen on {where}: the port is in use or the address is not local", file=sys.stderr)
        return 2
    return 0


def settings_flags(parser: argparse.ArgumentParser) -> Any:
    """`serve`'s flags, generated by pydantic-settings from the Settings model (one declaration, help shows env and default)."""
    from pydantic_settings import CliSettingsSource

    from controlplane.settings import FLAG_SHORTCUTS, Settings

    return CliSettingsSource(
        Settings,
        root_parser=parser,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_show_env_vars=True,
        cli_hide_none_type=True,
        cli_shortcuts=FLAG_SHORTCUTS,
    )


def setting_name(loc: Sequence[int | str]) -> str:
    """A validation error's location as the user wrote it: the flag and its environment variable, not the field."""
    field = str(loc[0]) if loc else "settings"
    return f"--{field.replace('_', '-')} (CONTROLPLANE_{field.upper()})"


if __name__ == "__main__":
    raise SystemExit(main())
