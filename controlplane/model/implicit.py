"""Services declared without labels: a container port mapping with a `name` and an
`appProtocol` of grpc, http2 or http (what ECS Service Connect users already write) stands for
the labels `xds.N.service=<name>`, `xds.N.port=<containerPort>`, `xds.N.protocol=...` and
`xds.N.route.hosts=<name>`. Opt-in (`--services-from-port-names`); a container with any label
under the prefix is read from its labels only. Pure."""

from __future__ import annotations

from dataclasses import replace

from controlplane.discovery.state import ContainerDefinition

# ECS appProtocol -> our xds.protocol.
APP_PROTOCOLS = {"grpc": "grpc", "http2": "http2", "http": "http1"}
MAX_IMPLICIT = 9  # indexed declarations xds.1. .. xds.9.


def with_port_name_labels(container: ContainerDefinition, prefix: str) -> ContainerDefinition:
    """`container` with labels synthesized from its named port mappings, unless it has labels
    under `prefix` already (labels win)."""
    if any(key.lower().startswith(prefix.lower()) for key in container.labels):
        return container
    labels = dict(container.labels)
    index = 0
    for mapping in container.port_mappings:
        protocol = APP_PROTOCOLS.get((mapping.app_protocol or "").lower())
        if protocol is None or not mapping.name or index == MAX_IMPLICIT:
            continue
        index += 1
        declared = f"{prefix}{index}."
        labels.update(
            {
                declared + "service": mapping.name,
                declared + "port": str(mapping.container_port),
                declared + "protocol": protocol,
                declared + "route.hosts": mapping.name,
            }
        )
    return replace(container, labels=labels) if index else container
