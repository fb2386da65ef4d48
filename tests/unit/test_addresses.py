"""Where a task's ports are reached, from DescribeTasks shapes (as AWS documents them)."""

from __future__ import annotations

from controlplane.discovery.addresses import container_endpoints, eni_address
from controlplane.discovery.state import ContainerDefinition, ContainerEndpoint, PortMapping, TaskDefinition


def _td(mode: str, *containers: tuple[str, tuple[int, ...]]) -> TaskDefinition:
    return TaskDefinition(
        arn="arn:aws:ecs:eu-west-1:123456789012:task-definition/orders:7",
        family="orders",
        revision=7,
        network_mode=mode,
        containers=tuple(
            ContainerDefinition(name, {}, tuple(PortMapping(p) for p in ports)) for name, ports in containers
        ),
    )


def _eni(address: str) -> dict:
    return {
        "id": "a1b2",
        "type": "ElasticNetworkInterface",
        "status": "ATTACHED",
        "details": [
            {"name": "subnetId", "value": "subnet-0abc"},
            {"name": "networkInterfaceId", "value": "eni-0123"},
            {"name": "macAddress", "value": "0a:1b:2c:3d:4e:5f"},
            {"name": "privateDnsName", "value": "ip-10-0-1-23.eu-west-1.compute.internal"},
            {"name": "privateIPv4Address", "value": address},
        ],
    }


def test_awsvpc_uses_the_eni_private_address_and_the_container_port() -> None:
    td = _td("awsvpc", ("app", (50051, 8080)))
    raw = {"attachments": [_eni("127.0.1.23")], "containers": [{"name": "app", "networkBindings": []}]}

    assert container_endpoints(raw, td, instance_address="192.168.9.9") == (
        ContainerEndpoint("app", 50051, "127.0.1.23", 50051),
        ContainerEndpoint("app", 8080, "127.0.1.23", 8080),
    )


def test_awsvpc_ignores_attachments_that_are_not_an_eni() -> None:
    other = {"type": "Service Connect", "details": [{"name": "privateIPv4Address", "value": "127.9.9.9"}]}
    assert eni_address({"attachments": [other, _eni("127.0.1.24")]}) == "127.0.1.24"


def test_fargate_falls_back_to_the_container_network_interface() -> None:
    td = _td("awsvpc", ("app", (50051,)))
    raw = {
        "attachments": [{"type": "ElasticNetworkInterface", "status": "PRECREATED", "details": []}],
        "containers": [
            {"name": "app", "networkInterfaces": [{"attachmentId": "a1b2", "privateIpv4Address": "127.0.2.5"}]}
        ],
    }

    assert container_endpoints(raw, td, None) == (ContainerEndpoint("app", 50051, "127.0.2.5", 50051),)


def test_awsvpc_without_an_address_yet_has_no_endpoints() -> None:
    td = _td("awsvpc", ("app", (50051,)))
    raw = {"attachments": [{"type": "ElasticNetworkInterface", "status": "PRECREATED", "details": []}]}
    assert container_endpoints(raw, td, "192.168.9.9") == ()


def test_bridge_uses_the_instance_address_and_each_dynamic_host_port() -> None:
    td = _td("bridge", ("app", (50051, 9090)), ("sidecar", (50051,)))
    raw = {
        "containers": [
            {
                "name": "app",
                "networkBindings": [
                    {"bindIP": "0.0.0.0", "containerPort": 50051, "hostPort": 32768, "protocol": "tcp"},
                    {"bindIP": "::", "containerPort": 50051, "hostPort": 32768, "protocol": "tcp"},
                    {"bindIP": "0.0.0.0", "containerPort": 9090, "hostPort": 32769, "protocol": "tcp"},
                ],
            },
            # The same container port in another container has its own host port.
            {
                "name": "sidecar",
                "networkBindings": [{"bindIP": "0.0.0.0", "containerPort": 50051, "hostPort": 32801, "protocol": "tcp"}],
            },
        ]
    }

    assert container_endpoints(raw, td, "127.0.0.7") == (
        ContainerEndpoint("app", 50051, "127.0.0.7", 32768),
        ContainerEndpoint("app", 9090, "127.0.0.7", 32769),
        ContainerEndpoint("sidecar", 50051, "127.0.0.7", 32801),
    )


def test_bridge_prefers_the_ipv4_binding_when_docker_reports_ipv6_first_on_another_port() -> None:
    """moby#42375: with dynamic ports Docker may publish :: and 0.0.0.0 on different host ports;
    the instance address we dial is IPv4, so only the IPv4 binding reaches the container."""
    td = _td("bridge", ("app", (50051,)))
    raw = {
        "containers": [
            {
                "name": "app",
                "networkBindings": [
                    {"bindIP": "::", "containerPort": 50051, "hostPort": 32770, "protocol": "tcp"},
                    {"bindIP": "0.0.0.0", "containerPort": 50051, "hostPort": 32768, "protocol": "tcp"},
                ],
            }
        ]
    }

    assert container_endpoints(raw, td, "127.0.0.7") == (ContainerEndpoint("app", 50051, "127.0.0.7", 32768),)
    # Only an IPv6 binding reported: better than nothing.
    only_v6 = {"containers": [{"name": "app", "networkBindings": [raw["containers"][0]["networkBindings"][0]]}]}
    assert container_endpoints(only_v6, td, "127.0.0.7") == (ContainerEndpoint("app", 50051, "127.0.0.7", 32770),)


def test_bridge_matches_bindings_by_protocol() -> None:
    td = TaskDefinition(
        arn="arn:aws:ecs:eu-west-1:123456789012:task-definition/dns:1",
        family="dns",
        revision=1,
        network_mode="bridge",
        containers=(ContainerDefinition("dns", {}, (PortMapping(53, protocol="udp"), PortMapping(53))),),
    )
    raw = {
        "containers": [
            {
                "name": "dns",
                "networkBindings": [
                    {"bindIP": "0.0.0.0", "containerPort": 53, "hostPort": 32800, "protocol": "udp"},
                    {"bindIP": "0.0.0.0", "containerPort": 53, "hostPort": 32801, "protocol": "tcp"},
                ],
            }
        ]
    }

    assert [e.port for e in container_endpoints(raw, td, "127.0.0.7")] == [32800, 32801]


def test_bridge_leaves_out_a_port_without_a_binding() -> None:
    td = _td("bridge", ("app", (50051, 9090)))
    raw = {"containers": [{"name": "app", "networkBindings": [{"containerPort": 9090, "hostPort": 32769}]}]}

    assert container_endpoints(raw, td, "127.0.0.7") == (ContainerEndpoint("app", 9090, "127.0.0.7", 32769),)


def test_bridge_without_an_instance_address_has_no_endpoints() -> None:
    td = _td("bridge", ("app", (50051,)))
    raw = {"containers": [{"name": "app", "networkBindings": [{"containerPort": 50051, "hostPort": 32768}]}]}
    assert container_endpoints(raw, td, None) == ()


def test_host_mode_uses_the_instance_address_and_the_container_port() -> None:
    td = _td("host", ("app", (50051,)))
    # ECS may report no networkBindings for host mode: the host port is the container port.
    assert container_endpoints({"containers": [{"name": "app"}]}, td, "127.0.0.8") == (
        ContainerEndpoint("app", 50051, "127.0.0.8", 50051),
    )
    with_bindings = {"containers": [{"name": "app", "networkBindings": [{"containerPort": 50051, "hostPort": 50051}]}]}
    assert container_endpoints(with_bindings, td, "127.0.0.8") == (ContainerEndpoint("app", 50051, "127.0.0.8", 50051),)
