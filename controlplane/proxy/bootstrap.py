"""Envoy bootstrap files for proxies of this control plane."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from envoy.config.bootstrap.v3 import bootstrap_pb2
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2  # noqa: F401 (registers the Any type)
from envoy.extensions.upstreams.http.v3 import http_protocol_options_pb2  # noqa: F401 (registers the Any type)
from google.protobuf import json_format

from controlplane.errors import SettingsError

XDS_CLUSTER = "xds_cluster"


@dataclass(frozen=True)
class XdsTls:
    """TLS from Envoy to the control plane: the CA to verify it, optionally a client certificate (mTLS)."""

    ca_file: str
    cert_file: str | None = None
    key_file: str | None = None
    sni: str | None = None

    def transport_socket(self) -> dict[str, object]:
        if (self.cert_file is None) != (self.key_file is None):
            raise SettingsError("--xds-tls-cert and --xds-tls-key go together (a client certificate for mTLS)")
        context: dict[str, object] = {
            "validation_context": {"trusted_ca": {"filename": self.ca_file}},
        }
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
) -> dict[str, object]:
    """A bootstrap for an edge Envoy: its node says role=edge and where to listen; all else is ADS."""
    _check_port("--listen-port", listen_port)
    metadata = {"role": "edge", "listen_address": listen_address, "listen_port": listen_port}
    return envoy_bootstrap(node_id, xds, metadata, node_cluster, admin_address, admin_port, tls)


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
    return envoy_bootstrap(node_id, xds, metadata, service, admin_address, admin_port, tls)


def grpc_client_bootstrap(*, node_id: str, xds: list[XdsAddress], service: str, tls: XdsTls | None = None) -> dict[str, object]:
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
    return {
        "xds_servers": [
            {"server_uri": f"{address.host}:{address.port}", "channel_creds": creds, "server_features": ["xds_v3"]}
            for address in xds
        ],
        "node": {"id": node_id, "cluster": service, "metadata": {"role": "grpc-client", "service": service}},
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
) -> dict[str, object]:
    """An Envoy bootstrap whose only static part is the way to the control plane."""
    if not xds:
        raise SettingsError("at least one --xds HOST:PORT is required")
    _check_port("--admin-port", admin_port)
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
                "grpc_services": [{"envoy_grpc": {"cluster_name": XDS_CLUSTER}}],
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
    }
    # Parse through Envoy's own schema so a typo here fails now, not when Envoy starts.
    json_format.ParseDict(config, bootstrap_pb2.Bootstrap())
    return config
