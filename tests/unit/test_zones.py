"""Zones: the proxy's own fleet from node metadata, the label that lowers Envoy's min cluster size,
and the bootstrap flags that name the zone and fleet."""

from __future__ import annotations

import pytest

from controlplane.admin import views
from controlplane.errors import NodeError, SettingsError
from controlplane.model.build import build_mesh
from controlplane.model.mesh import Mesh
from controlplane.proxy.bootstrap import ProxyOptions, XdsAddress, sidecar_bootstrap
from controlplane.proxy.roles import EdgeRole, SidecarRole, role_from_metadata
from controlplane.translate import translate
from controlplane.xds.types import TypeUrl

from .builders import cluster_state, task, task_definition
from .test_bootstrap import bootstrap_cli


def test_node_metadata_local_service_makes_a_zone_aware_role_with_its_own_key() -> None:
    sidecar = role_from_metadata("s", {"role": "sidecar", "service": "caller", "local_service": "caller"})
    assert isinstance(sidecar, SidecarRole) and sidecar.zone_aware
    assert sidecar.key != SidecarRole(service="caller").key
    edge = role_from_metadata("e", {"role": "edge", "local_service": "edgefleet"})
    assert isinstance(edge, EdgeRole) and edge.local_service == "edgefleet" and edge.key.endswith(",local=edgefleet")
    with pytest.raises(NodeError, match="a sidecar's own fleet is its service 'caller'"):
        role_from_metadata("s", {"role": "sidecar", "service": "caller", "local_service": "other"})
    with pytest.raises(NodeError, match="local_service is empty"):
        role_from_metadata("e", {"role": "edge", "local_service": " "})


def _mesh() -> Mesh:
    caller = task_definition("caller", 1, {"xds.service": "caller", "xds.upstreams": "backend", "xds.route.hosts": "caller.local"})
    backend = task_definition("backend", 1, {"xds.service": "backend", "xds.route.hosts": "backend.local", "xds.lb.locality": "zone-aware", "xds.lb.zone-min-tasks": "3"})
    tasks = [task(caller, "c1", "127.0.1.1"), task(backend, "b1", "127.0.1.2"), task(backend, "b2", "127.0.2.2", zone="eu-west-1b")]
    return build_mesh([cluster_state(tasks, [caller, backend])])


def test_only_a_zone_aware_sidecar_receives_its_own_services_endpoints() -> None:
    mesh = _mesh()
    assert not mesh.problems
    assert mesh.service("backend").policy.load_balancing.zone_min_tasks == 3  # type: ignore[union-attr]
    plain = translate(mesh, SidecarRole(service="caller")).of(TypeUrl.ENDPOINT)
    zoned = translate(mesh, SidecarRole(service="caller", zone_aware=True))
    assert set(plain) == {"backend"}
    assert set(zoned.of(TypeUrl.ENDPOINT)) == {"backend", "caller"}
    assert set(zoned.of(TypeUrl.CLUSTER)) == {"backend"}  # the local cluster is the bootstrap's, not sent by CDS
    backend = zoned.of(TypeUrl.CLUSTER)["backend"]
    assert backend.common_lb_config.zone_aware_lb_config.min_cluster_size.value == 3  # type: ignore[attr-defined]
    # The admin API shows it next to the locality mode (0 = Envoy's default).
    shown = views.policies(mesh.service("backend"))  # type: ignore[arg-type]
    assert (shown.locality, shown.zone_min_tasks) == ("zone-aware", 3)
    assert views.policies(mesh.service("caller")).zone_min_tasks == 0  # type: ignore[arg-type]


def test_zone_min_tasks_needs_zone_aware() -> None:
    td = task_definition("b", 1, {"xds.service": "b", "xds.lb.locality": "equal-zones", "xds.lb.zone-min-tasks": "2"})
    mesh = build_mesh([cluster_state([task(td, "b1", "127.0.1.2")], [td])])
    (problem,) = [p for p in mesh.problems if p.severity == "error"]
    assert problem.label == "xds.lb.zone-min-tasks" and "expected with xds.lb.locality zone-aware (it is equal-zones)" in problem.message


def test_a_sidecar_fleet_other_than_its_service_is_refused() -> None:
    with pytest.raises(SettingsError, match="a sidecar's own fleet is its service caller"):
        sidecar_bootstrap(node_id="s", xds=[XdsAddress("127.0.0.1", 1)], service="caller", proxy=ProxyOptions(zone="z", local_service="x"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--role", "edge", "--listen-port", "1", "--zone", "z", "--zone-aware"], "--zone-aware is for --role sidecar"),
        (["--role", "sidecar", "--service", "caller", "--zone-aware"], "--zone-aware needs the proxy's zone"),
    ],
)
def test_zone_aware_flag_mistakes_are_one_line(args: list[str], message: str) -> None:
    done = bootstrap_cli(*args)
    assert done.returncode == 2 and done.stderr.startswith(f"controlplane: {message}") and "Traceback" not in done.stderr
