"""The `controlplane` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Sequence

from pydantic import ValidationError

from controlplane.errors import ControlPlaneError


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
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
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="watch ECS and serve xDS to Envoy")
    serve.add_argument("--cluster", dest="clusters", action="append", help="ECS cluster to watch (repeatable)")
    serve.add_argument("--region", help="AWS region")
    serve.add_argument("--xds-address", help="address to serve xDS on (default 0.0.0.0)")
    serve.add_argument("--xds-port", type=int, help="port to serve xDS on (default 18000)")
    serve.add_argument("--label-prefix", help="Docker label prefix (default 'xds.')")
    serve.add_argument("--poll-interval", dest="poll_interval_seconds", type=float, help="seconds between ECS reads")
    serve.add_argument("--events-queue-url", help="SQS queue receiving ECS events from EventBridge (turns event mode on)")
    serve.add_argument("--resync-interval", dest="resync_interval_seconds", type=float, help="seconds between full reads in event mode (default 300)")
    serve.add_argument("--no-trust-event-details", dest="events_trust_details", action="store_const", const=False, help="describe every task an event names instead of using the event's detail")
    serve.add_argument("--discover-clusters", action="store_const", const=True, help="watch every cluster ListClusters returns")
    serve.add_argument("--service-filter", help="regex: only tasks of ECS services whose name matches")
    serve.add_argument("--family-filter", help="regex: only tasks whose task definition family matches")
    serve.add_argument("--discovery-concurrency", type=int, help="clusters read at once (default 4)")
    serve.add_argument("--deployment-poll-interval", dest="deployment_poll_interval_seconds", type=float, help="polling: seconds between reads of a cluster while a deployment is in progress (default 1)")
    serve.add_argument("--health-refresh", dest="health_refresh_seconds", type=float, help="seconds between DescribeTasks of tasks not HEALTHY yet (default 2)")
    serve.add_argument("--health-refresh-steady", dest="health_refresh_steady_seconds", type=float, help="events: seconds between DescribeTasks of health-checked tasks once HEALTHY (default 30)")
    serve.add_argument("--services-from-port-names", action="store_const", const=True, help="serve containers without labels through their named port mappings (appProtocol grpc/http2/http)")
    serve.add_argument("--serve-unknown-health", action="store_const", const=True, help="serve health-checked containers before their first check (UNKNOWN)")
    serve.add_argument("--admin-address", help="address of the admin API (default 127.0.0.1)")
    serve.add_argument("--admin-port", type=int, help="port of the admin API (default 18001)")
    serve.add_argument("--admin-token", help="bearer token the admin API requires (required off loopback without mTLS)")
    serve.add_argument("--admin-tls-cert", help="PEM certificate of the admin API")
    serve.add_argument("--admin-tls-key", help="PEM key of the admin API")
    serve.add_argument("--admin-tls-client-ca", help="PEM CA that admin clients' certificates must chain to (mTLS)")
    serve.add_argument("--xds-tls-cert", help="PEM certificate of the xDS server")
    serve.add_argument("--xds-tls-key", help="PEM key of the xDS server")
    serve.add_argument("--xds-tls-client-ca", help="PEM CA that proxies' client certificates must chain to (mTLS)")
    serve.add_argument("--metrics-address", help="address of the Prometheus endpoint (default 127.0.0.1)")
    serve.add_argument("--metrics-port", type=int, help="port of the Prometheus endpoint (default 18002)")
    serve.add_argument("--aws-max-attempts", type=int, help="attempts per AWS call, retries included (default 5, adaptive mode)")
    serve.add_argument("--log-format", choices=["auto", "json", "console"])
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error"])

    boot = commands.add_parser("bootstrap", help="print an Envoy bootstrap for a proxy of this control plane")
    boot.add_argument("--role", choices=["edge", "sidecar", "grpc-client"], default="edge")
    boot.add_argument("--node-id", required=True)
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
        if name == "services":
            sub.add_argument("--endpoints", action="store_true", help="also list every endpoint")

    parsed = parser.parse_args(args)
    if parsed.command in COMMANDS:
        from controlplane.admin.client import run as run_client

        return run_client(parsed)
    try:
        if parsed.command == "serve":
            return _serve(parsed)
        if parsed.command == "bootstrap":
            return _bootstrap(parsed)
    except ControlPlaneError as error:
        print(f"controlplane: {error}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {parsed.command}")
    return 2


def _bootstrap(parsed: argparse.Namespace) -> int:
    from controlplane.proxy.bootstrap import XdsAddress, XdsTls, edge_bootstrap, grpc_client_bootstrap, sidecar_bootstrap
    from controlplane.errors import SettingsError

    tls = None
    if parsed.xds_tls_ca:
        tls = XdsTls(parsed.xds_tls_ca, parsed.xds_tls_cert, parsed.xds_tls_key, parsed.xds_tls_sni)
    elif parsed.xds_tls_cert or parsed.xds_tls_key:
        raise SettingsError("--xds-tls-cert/--xds-tls-key need --xds-tls-ca (the CA that verifies the control plane)")
    xds = [XdsAddress.parse(text) for text in parsed.xds]
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
        )
    else:
        config = grpc_client_bootstrap(node_id=parsed.node_id, xds=xds, service=parsed.service or "", tls=tls)
    json.dump(config, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _serve(parsed: argparse.Namespace) -> int:
    from controlplane.app import ControlPlane
    from controlplane.logs import configure_logging
    from controlplane.settings import Settings

    overrides = {
        key: value
        for key, value in vars(parsed).items()
        if key != "command" and value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as error:
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            print(f"controlplane serve: setting {where}: {item['msg']}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)

    async def run() -> None:
        plane = ControlPlane(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await plane.start()
        await stop.wait()
        await plane.stop()

    try:
        asyncio.run(run())
    except ControlPlaneError as error:
        print(f"controlplane serve: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
