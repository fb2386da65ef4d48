"""Helpers for xDS protocol tests: requests, and reading responses back."""

from __future__ import annotations

from typing import Any

from envoy.config.cluster.v3 import cluster_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from controlplane.cache.snapshot import Snapshot, build_snapshot
from controlplane.model.mesh import Endpoint, EndpointHealth, Mesh, Protocol, RouteMatch, Service
from controlplane.proxy.roles import EdgeRole
from controlplane.translate import translate
from controlplane.xds.types import TypeUrl

CDS, EDS, LDS, RDS = TypeUrl.CLUSTER, TypeUrl.ENDPOINT, TypeUrl.LISTENER, TypeUrl.ROUTE
ROLE = EdgeRole(listen_address="127.0.0.1", listen_port=10000)
MESSAGES = {
    CDS: cluster_pb2.Cluster,
    EDS: endpoint_pb2.ClusterLoadAssignment,
    LDS: listener_pb2.Listener,
    RDS: route_pb2.RouteConfiguration,
    TypeUrl.SECRET: secret_pb2.Secret,
}


def service(name: str, *addresses: str, prefix: str | None = None) -> Service:
    return Service(
        name=name,
        protocol=Protocol.GRPC,
        route=RouteMatch(hosts=("*",), path_prefix=prefix or f"/{name}/"),
        container_port=50051,
        declared_by=f"{name}:1",
        endpoints=tuple(
            Endpoint(address, 50051, f"arn:aws:ecs:eu-west-1:1:task/prod/{name}-{i}", "prod", f"{name}:1", EndpointHealth.HEALTHY)
            for i, address in enumerate(addresses)
        ),
    )


def mesh(*services: Service) -> Mesh:
    return Mesh(services=tuple(sorted(services, key=lambda s: s.name)))


def snapshot(m: Mesh, listen_port: int = 10000, previous: Snapshot | None = None) -> Snapshot:
    """The edge role's snapshot of `m` (another `listen_port` changes only the listener). With
    `previous`, unchanged types keep its mapping objects, as the cache's snapshots do."""
    return build_snapshot(translate(m, EdgeRole(listen_address="127.0.0.1", listen_port=listen_port)), previous)


def request(
    type_url: TypeUrl,
    names: tuple[str, ...] = (),
    *,
    ack: discovery_pb2.DiscoveryResponse | None = None,
    version: str | None = None,
    nonce: str | None = None,
    error: str | None = None,
    node_id: str = "edge-1",
) -> discovery_pb2.DiscoveryRequest:
    """A request; `ack` fills version and nonce from a response (an ACK, or a NACK with `error`)."""
    req = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=list(names))
    req.node.id = node_id
    if ack is not None:
        req.response_nonce = ack.nonce
        req.version_info = ack.version_info
    if version is not None:
        req.version_info = version
    if nonce is not None:
        req.response_nonce = nonce
    if error is not None:
        req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return req


def types(responses: list[discovery_pb2.DiscoveryResponse]) -> list[str]:
    return [TypeUrl(r.type_url).short for r in responses]


def decoded(response: discovery_pb2.DiscoveryResponse) -> dict[str, object]:
    """The response's resources by name."""
    kind = MESSAGES[TypeUrl(response.type_url)]
    out: dict[str, object] = {}
    for packed in response.resources:
        assert packed.type_url == response.type_url
        message = kind()
        message.ParseFromString(packed.value)
        out[message.cluster_name if kind is endpoint_pb2.ClusterLoadAssignment else message.name] = message
    return out


def names(response: discovery_pb2.DiscoveryResponse) -> list[str]:
    return sorted(decoded(response))


def _by_name(response: Any) -> dict[str, object]:
    return response.resources if isinstance(response, Reply) else decoded(response)


def routed_clusters(response: Any) -> list[str]:
    """The clusters a DiscoveryResponse's (or a Reply's) route configuration sends to."""
    (config,) = _by_name(response).values()
    return sorted({r.route.cluster for vh in config.virtual_hosts for r in vh.routes})  # type: ignore[attr-defined]


def addresses(response: Any, cluster: str) -> list[tuple[str, int]]:
    assignment = _by_name(response)[cluster]
    return [
        (e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value)
        for locality in assignment.endpoints  # type: ignore[attr-defined]
        for e in locality.lb_endpoints
    ]


# -- a proxy speaking SotW or Delta to a stream state machine, without a network ---------------


class Reply:
    """One response as the proxy reads it off the wire, whatever the protocol."""

    def __init__(self, wire: bytes, delta: bool) -> None:
        message: discovery_pb2.DiscoveryResponse | discovery_pb2.DeltaDiscoveryResponse
        if delta:
            message = discovery_pb2.DeltaDiscoveryResponse.FromString(wire)
            packed = [r.resource for r in message.resources]
            self.version = message.system_version_info
            self.removed = sorted(message.removed_resources)
            self.resource_versions = {r.name: r.version for r in message.resources}
        else:
            message = discovery_pb2.DiscoveryResponse.FromString(wire)
            packed = list(message.resources)
            self.version = message.version_info
            self.removed = []
            self.resource_versions = {}
        self.message = message
        self.type = TypeUrl(message.type_url)
        self.nonce = message.nonce
        kind = MESSAGES.get(self.type)
        self.resources: dict[str, object] = {}
        for any_message in packed if kind is not None else ():
            assert any_message.type_url == message.type_url
            resource = kind()
            resource.ParseFromString(any_message.value)
            self.resources[resource.cluster_name if kind is endpoint_pb2.ClusterLoadAssignment else resource.name] = resource  # type: ignore[attr-defined]

    @property
    def short(self) -> str:
        return self.type.short

    @property
    def names(self) -> list[str]:
        return sorted(self.resources)

    def __repr__(self) -> str:
        return f"<{self.short} {self.names} removed={self.removed} nonce={self.nonce}>"


def shorts(replies: list[Reply]) -> list[str]:
    return [reply.short for reply in replies]


class FakeClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Proxy:
    """A proxy on one stream, speaking `protocol` ("sotw" or "delta") the way Envoy does, and
    keeping what it runs: a response is applied when it is ACKed, not when it is NACKed."""

    def __init__(self, protocol: str, *, ordered: bool = True, node_id: str = "edge-1", backoff: Any = None) -> None:
        from controlplane.server.delta import DeltaStream
        from controlplane.server.registry import ProxyRegistry
        from controlplane.server.stream import SotwStream

        self.delta = protocol == "delta"
        self.clock = FakeClock()
        record = ProxyRegistry().open(node_id=node_id, node_cluster="edge", role="edge/127.0.0.1:10000", peer="ipv4:127.0.0.1:1")
        kind = DeltaStream if self.delta else SotwStream
        self.stream: Any = kind(record, nonce_prefix="t-", ordered=ordered, backoff=backoff, clock=self.clock)
        self.record = record
        self.snapshot: Snapshot | None = None
        self.subscribed: dict[TypeUrl, tuple[str, ...] | None] = {}  # None: wildcard
        self.running: dict[TypeUrl, dict[str, object]] = {}
        self.accepted: dict[TypeUrl, Reply] = {}  # last response ACKed (SotW quotes its version)
        self.answered: dict[TypeUrl, Reply] = {}  # last response ACKed or NACKed (requests quote its nonce)

    # -- requests ---------------------------------------------------------------------------

    def ask(self, type_url: TypeUrl, names: tuple[str, ...] | None = None) -> list[Reply]:
        """Subscribe to `names` (None: every resource of a wildcard type), as a new subscription."""
        return self._send(type_url, names, reply=None, error=None)

    def ack(self, reply: Reply, names: tuple[str, ...] | None | str = "same") -> list[Reply]:
        """Accept `reply` (optionally changing the subscription at the same time)."""
        self._apply(reply)
        self.accepted[reply.type] = reply
        return self._send(reply.type, self.subscribed.get(reply.type) if names == "same" else names, reply=reply, error=None)  # type: ignore[arg-type]

    def nack(self, reply: Reply, error: str) -> list[Reply]:
        return self._send(reply.type, self.subscribed.get(reply.type), reply=reply, error=error)

    def push(self, snapshot: Snapshot | None = None) -> list[Reply]:
        if snapshot is not None:
            self.snapshot = snapshot
        return self._replies(self.stream.push(self.snapshot))

    def after(self, seconds: float) -> list[Reply]:
        """Let time pass, then push (as the server does when a NACK backoff is over)."""
        self.clock.now += seconds
        return self.push()

    def holds(self, type_url: TypeUrl) -> list[str]:
        return sorted(self.running.get(type_url, {}))

    def _send(self, type_url: TypeUrl, names: tuple[str, ...] | None, reply: Reply | None, error: str | None) -> list[Reply]:
        before = self.subscribed.get(type_url, ())
        first = type_url not in self.subscribed
        self.subscribed[type_url] = names
        if names is not None and before is None:
            before = ()
        # A proxy forgets what it unsubscribes from.
        if names is not None:
            for name in list(self.running.get(type_url, {})):
                if name not in names and type_url not in (CDS, LDS):
                    del self.running[type_url][name]
        answered = reply or self.answered.get(type_url)
        if reply is not None:
            self.answered[type_url] = reply
        if self.delta:
            req: Any = discovery_pb2.DeltaDiscoveryRequest(type_url=type_url.value)
            if names is None:
                if not first and before is not None:
                    req.resource_names_subscribe.append("*")
            else:
                req.resource_names_subscribe.extend(sorted(set(names) - set(before or ())))
                req.resource_names_unsubscribe.extend(sorted(set(before or ()) - set(names)))
            if reply is not None:
                req.response_nonce = reply.nonce
        else:
            req = discovery_pb2.DiscoveryRequest(type_url=type_url.value, resource_names=list(names or ()))
            if answered is not None:
                req.response_nonce = answered.nonce
            accepted = self.accepted.get(type_url)
            if accepted is not None:
                req.version_info = accepted.version
        req.node.id = "edge-1"
        if error is not None:
            req.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
        return self._replies(self.stream.on_request(req, self.snapshot))

    def _replies(self, responses: list[Any]) -> list[Reply]:
        return [Reply(response.to_bytes(), self.delta) for response in responses]

    def _apply(self, reply: Reply) -> None:
        running = self.running.setdefault(reply.type, {})
        if not self.delta and reply.type in (CDS, LDS):
            running.clear()  # state of the world: what is not in the response is gone
        running.update(reply.resources)
        for name in reply.removed:
            running.pop(name, None)

    # -- the walk Envoy does ----------------------------------------------------------------

    def handshake(self, snapshot: Snapshot) -> dict[str, Reply]:
        """CDS -> EDS -> LDS -> RDS with ACKs, as Envoy walks it; returns the responses by type."""
        self.snapshot = snapshot
        sent: dict[str, Reply] = {}
        (cds,) = self.ask(CDS)
        assert self.ask(LDS) == []
        assert self.ack(cds) == []
        eds, lds = self.ask(EDS, tuple(cds.names))
        assert self.ack(eds) == []
        assert self.ack(lds) == []
        (rds,) = self.ask(RDS, ("edge",))
        assert self.ack(rds) == []
        sent.update(CDS=cds, EDS=eds, LDS=lds, RDS=rds)
        return sent
