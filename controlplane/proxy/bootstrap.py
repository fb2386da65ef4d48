"""Envoy bootstrap files for proxies of this control plane."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.resource_monitors.downstream_connections.v3 import downstream_connections_pb2  # noqa: F401 (registers the Any type)
from envoy.extensions.resource_monitors.fixed_heap.v3 import fixed_heap_pb2  # noqa: F401 (registers the Any type)
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401 (registers the Any type)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 (registers the Any type)
from google.protobuf import json_format

from controlplane.errors import SettingsError

XDS_CLUSTER = "xds_cluster"
XDS_TOKEN_ENV = "CONTROLPLANE_XDS_TOKEN"


def xds_token(path: str | None, environ: Mapping[str, str] = os.environ) -> str | None:
    """The proxy's xDS bearer token, from a file or CONTROLPLANE_XDS_TOKEN; never from argv, which
    every local user can read in /proc/PID/cmdline."""
    if path:
        try:
            token = Path(path).read_text().strip()
        except OSError as error:
            raise SettingsError(f"--xds-token-file {path}: {error.strerror}") from None
        if not token:
            raise SettingsError(f"--xds-token-file {path} is empty")
        return token
    token = environ.get(XDS_TOKEN_ENV, "").strip()
    return token or None


LOCAL_CLUSTER = "local_cluster"
DOWNSTREAM_CONNECTIONS_MONITOR = "envoy.resource_monitors.global_downstream_max_connections"
FIXED_HEAP_MONITOR = "envoy.resource_monitors.fixed_heap"


@dataclass(frozen=True)
class ProxyOptions:
    """What every Envoy bootstrap of ours may set besides its role: reconnect backoff to the control
    plane, overload protection and locality."""

    zone: str | None = None  # the proxy's availability zone (node.locality.zone)
    # zone-aware balancing compares the zones of this ECS service's tasks (the proxy's own fleet) with the upstream's
    local_service: str | None = None
    max_downstream_connections: int = 50_000
    max_heap_bytes: int | None = None  # set to the task's memory to shed load before the OOM killer does
    # Envoy's default reconnect backoff is 0.5-30 s: after a control-plane restart proxies waited 9-18 s.
    xds_retry_base_ms: int = 250
    xds_retry_max_ms: int = 2000

    def check(self) -> None:
        if self.max_downstream_connections < 1:
            raise SettingsError(f"--max-downstream-connections {self.max_downstream_connections}: expected a positive integer")
        if self.max_heap_bytes is not None and self.max_heap_bytes < 16 * 1024 * 1024:
            raise SettingsError(f"--max-heap-bytes {self.max_heap_bytes}: expected at least 16 MiB (16777216)")
        if not 1 <= self.xds_retry_base_ms <= self.xds_retry_max_ms:
            raise SettingsError("xDS reconnect backoff: expected 1 <= base <= max milliseconds")
        if self.local_service is not None and not self.zone:
            raise SettingsError("--local-service is for zone-aware balancing and needs --zone (the proxy's own zone)")

    def overload_manager(self) -> dict[str, object]:
        """A global downstream connection limit (Envoy warns at start without one) and, with a heap
        size, heap-based load shedding as in Envoy's edge best practices."""
        monitors: list[dict[str, object]] = [
            {
                "name": DOWNSTREAM_CONNECTIONS_MONITOR,
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
                    "max_active_downstream_connections": self.max_downstream_connections,
                },
            }
        ]
        config: dict[str, object] = {"resource_monitors": monitors}
        if self.max_heap_bytes is not None:
            monitors.append(
                {
                    "name": FIXED_HEAP_MONITOR,
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig",
                        "max_heap_size_bytes": self.max_heap_bytes,
                    },
                }
            )
            config["refresh_interval"] = "0.25s"
            config["actions"] = [
                {"name": "envoy.overload_actions.shrink_heap", "triggers": [{"name": FIXED_HEAP_MONITOR, "threshold": {"value": 0.95}}]},
                {"name": "envoy.overload_actions.stop_accepting_requests", "triggers": [{"name": FIXED_HEAP_MONITOR, "threshold": {"value": 0.98}}]},
            ]
        return config

    def retry_policy(self) -> dict[str, object]:
        return {"retry_back_off": {"base_interval": f"{self.xds_retry_base_ms / 1000}s", "max_interval": f"{self.xds_retry_max_ms / 1000}s"}}

    def local_cluster(self) -> dict[str, object]:
        """The proxy's own fleet, by EDS over ADS: Envoy's zone-aware balancing needs it in static_resources."""
        return {
            "name": LOCAL_CLUSTER,
            "type": "EDS",
            "connect_timeout": "1s",
            # A service the control plane does not know must not hold Envoy's start for the default 15 s.
            "eds_cluster_config": {
                "service_name": self.local_service,
                "eds_config": {"ads": {}, "resource_api_version": "V3", "initial_fetch_timeout": "2s"},
            },
        }


@dataclass(frozen=True)
class XdsTls:
    """TLS from Envoy to the control plane: the CA to verify it, optionally a client certificate (mTLS)."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    sni: str | None = None
    # The SAN the control plane's certificate must carry (default: the SNI). Without one, any
    # certificate of the CA would pass for the control plane: a proxy's own when they share a CA,
    # any web site's with a public CA bundle.
    server_san: str | None = None

    def transport_socket(self) -> dict[str, object]:
        if (self.cert_file is None) != (self.key_file is None):
            raise SettingsError("--xds-tls-cert and --xds-tls-key go together (a client certificate for mTLS)")
        validation: dict[str, object] = {"trusted_ca": {"filename": self.ca_file}}
        san = self.server_san or self.sni
        if san:
            validation["match_typed_subject_alt_names"] = [{"san_type": "URI" if "://" in san else "DNS", "matcher": {"exact": san}}]
        context: dict[str, object] = {"validation_context": validation}
        if self.cert_file and self.key_file:
            context["tls_certificates"] = [
                {"certificate_chain": {"filename": self.cert_file}, "private_key": {"filename": self.key_file}}
            ]
        upstream: dict[str, object] = {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
            "common_tls_context": context,
        }
        if self.sni:
            upstream["sni"] = self.sni
        return {"name": "envoy.transport_sockets.tls", "typed_config": upstream}


@dataclass(frozen=True)
class XdsAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> XdsAddress:
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise SettingsError(f"--xds {text!r}: expected HOST:PORT, e.g. 127.0.0.1:18000")
        return cls(host.strip("[]"), int(port))

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True


def edge_bootstrap(
    *,
    node_id: str,
    xds: list[XdsAddress],
    listen_port: int,
    listen_address: str = "0.0.0.0",
    admin_address: str = "127.0.0.1",
    admin_port: int = 9901,
    node_cluster: str = "edge",
    tls: XdsTls | None = None,
    proxy: ProxyOptions = ProxyOptions(),
    token: str | None = None,
) -> dict[str, object]:
    """A bootstrap for an edge Envoy: its node says role=edge and where to listen; all else is ADS."""
    _check_port("--listen-port", listen_port)
    metadata = {"role": "edge", "listen_address": listen_address, "listen_port": listen_port}
    return envoy_bootstrap(node_id, xds, metadata, node_cluster, admin_address, admin_port, tls, proxy, token)


def sidecar_bootstrap(
    *,
    node_id: str,
    xds: list[XdsAddress],
    service: str,
    outbound_port: int = 15001,
    outbound_address: str = "127.0.0.1",
    inbound_port: int | None = None,
    inbound_address: str = "0.0.0.0",
    app_port: int | None = None,
    app_address: str = "127.0.0.1",
    admin_address: str = "127.0.0.1",
    admin_port: int = 9901,
    tls: XdsTls | None = None,
    proxy: ProxyOptions = ProxyOptions(),
    token: str | None = None,
) -> dict[str, object]:
    """A bootstrap for the Envoy sidecar of one task of `service`."""
    if not service:
        raise SettingsError("--service is required for --role sidecar")
    _check_port("--outbound-port", outbound_port)
    metadata: dict[str, object] = {
        "role": "sidecar",
        "service": service,
        "outbound_address": outbound_address,
        "outbound_port": outbound_port,
    }
    if (inbound_port is None) != (app_port is None):
        raise SettingsError("--inbound-port and --app-port go together: the inbound listener forwards to the app")
    if inbound_port is not None and app_port is not None:
        _check_port("--inbound-port", inbound_port)
        _check_port("--app-port", app_port)
        metadata.update(inbound_address=inbound_address, inbound_port=inbound_port, app_port=app_port, app_address=app_address)
    if proxy.local_service is not None and proxy.local_service != service:
        raise SettingsError(f"--local-service {proxy.local_service}: a sidecar's own fleet is its service {service} (use --zone-aware)")
    return envoy_bootstrap(node_id, xds, metadata, service, admin_address, admin_port, tls, proxy, token)


def grpc_client_bootstrap(
    *, node_id: str, xds: list[XdsAddress], service: str, tls: XdsTls | None = None, zone: str | None = None
) -> dict[str, object]:
    """The JSON a gRPC library reads from GRPC_XDS_BOOTSTRAP to resolve `xds:///NAME` targets."""
    if not service:
        raise SettingsError("--service is required for --role grpc-client")
    if not xds:
        raise SettingsError("at least one --xds HOST:PORT is required")
    creds: list[dict[str, object]] = [{"type": "insecure"}]
    if tls is not None:
        config: dict[str, object] = {"ca_certificate_file": tls.ca_file}
        if tls.cert_file and tls.key_file:
            config.update(certificate_file=tls.cert_file, private_key_file=tls.key_file)
        creds = [{"type": "tls", "config": config}]
    node: dict[str, object] = {"id": node_id, "cluster": service, "metadata": {"role": "grpc-client", "service": service}}
    if zone:
        node["locality"] = {"zone": zone}
    return {
        "xds_servers": [
            {"server_uri": f"{address.host}:{address.port}", "channel_creds": creds, "server_features": ["xds_v3"]}
            for address in xds
        ],
        "node": node,
    }


def _check_port(name: str, value: int) -> None:
    if not 0 <= value <= 65535:
        raise SettingsError(f"{name} {value}: expected an integer 0-65535")


def envoy_bootstrap(
    node_id: str,
    xds: list[XdsAddress],
    metadata: dict[str, object],
    node_cluster: str,
    admin_address: str,
    admin_port: int,
    tls: XdsTls | None,
    proxy: ProxyOptions = ProxyOptions(),
    token: str | None = None,
) -> dict[str, object]:
    """An Envoy bootstrap whose only static part is the way to the control plane (and, for
    zone-aware balancing, the proxy's own fleet); with `token`, the bearer token Envoy sends on
    every xDS stream."""
    if not xds:
        raise SettingsError("at least one --xds HOST:PORT is required")
    _check_port("--admin-port", admin_port)
    proxy.check()
    resolver_type = "STATIC" if all(address.is_ip for address in xds) else "STRICT_DNS"
    config: dict[str, object] = {
        "node": {
            "id": node_id,
            "cluster": node_cluster,
            "metadata": metadata,
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [
                    {
                        "envoy_grpc": {"cluster_name": XDS_CLUSTER, "retry_policy": proxy.retry_policy()},
                        **({"initial_metadata": [{"key": "authorization", "value": f"Bearer {token}"}]} if token else {}),
                    }
                ],
                "set_node_on_first_message_only": True,
            },
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [
                {
                    "name": XDS_CLUSTER,
                    "type": resolver_type,
                    "connect_timeout": "1s",
                    "typed_extension_protocol_options": {
                        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                            "explicit_http_config": {
                                "http2_protocol_options": {
                                    "connection_keepalive": {"interval": "30s", "timeout": "5s"}
                                }
                            },
                        }
                    },
                    **({"transport_socket": tls.transport_socket()} if tls else {}),
                    "load_assignment": {
                        "cluster_name": XDS_CLUSTER,
                        "endpoints": [
                            {
                                "lb_endpoints": [
                                    {
                                        "endpoint": {
                                            "address": {
                                                "socket_address": {"address": address.host, "port_value": address.port}
                                            }
                                        }
                                    }
                                    for address in xds
                                ]
                            }
                        ],
                    },
                }
            ]
        },
        "admin": {"address": {"socket_address": {"address": admin_address, "port_value": admin_port}}},
        "overload_manager": proxy.overload_manager(),
    }
    if proxy.zone:
        config["node"]["locality"] = {"zone": proxy.zone}  # type: ignore[index]
    if proxy.local_service:
        # Tells the control plane to send the fleet's endpoints and to keep services that are not zone-aware spread over all zones.
        metadata["local_service"] = proxy.local_service
        config["cluster_manager"] = {"local_cluster_name": LOCAL_CLUSTER}
        config["static_resources"]["clusters"].append(proxy.local_cluster())  # type: ignore[index]
    # Parse through Envoy's own schema so a typo here fails now, not when Envoy starts.
    json_format.ParseDict(config, bootstrap_pb2.Bootstrap())
    return config
