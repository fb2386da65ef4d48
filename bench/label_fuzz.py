"""Label fuzzing: arbitrary strings into every label and random label sets into the model, then every
accepted set through real Envoy (`envoy --mode validate`). The unit suite runs a small sample of the
same strategies (tests/unit/test_label_properties.py); this script runs many and reports.

    .venv/bin/python bench/label_fuzz.py --values 20000 --sets 5000 --envoy 300

Checks: no exception escapes the model for any string; every problem names a label its task
definition set, and is printable and encodable; every accepted set's edge and sidecar resources are
accepted by Envoy. Every address handed to Envoy is on loopback.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from envoy.config.bootstrap.v3 import bootstrap_pb2  # noqa: E402
from envoy.config.cluster.v3 import cluster_pb2  # noqa: E402
from envoy.config.listener.v3 import listener_pb2  # noqa: E402
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm_pb2  # noqa: E402
from google.protobuf import json_format  # noqa: E402

from controlplane.discovery.state import (  # noqa: E402
    ClusterState,
    ContainerDefinition,
    ContainerEndpoint,
    PortMapping,
    Task,
    TaskDefinition,
)
from controlplane.model import grammar as g  # noqa: E402
from controlplane.model import json_grammar as jg  # noqa: E402
from controlplane.model import jwt_grammar as jwtg  # noqa: E402
from controlplane.model import route_grammar as rg  # noqa: E402
from controlplane.model.build import build_mesh  # noqa: E402
from controlplane.model.mesh import Mesh  # noqa: E402
from controlplane.model.schema import FAMILIES as LABEL_FAMILIES  # noqa: E402
from controlplane.model.schema import LABELS, LabelFamily, LabelSpec  # noqa: E402
from controlplane.proxy.roles import EdgeRole, SidecarRole  # noqa: E402
from controlplane.translate import translate  # noqa: E402
from controlplane.translate.resources import Resources  # noqa: E402
from controlplane.xds.types import TypeUrl  # noqa: E402

PREFIX = "xds."
SERVICES = ("orders", "web", "pay", "orders-next", "users", "search")  # a small pool: conflicts, weights and upstreams meet
PREFIXES = ("/", "/a/", "/a/b/", "/routeguide.RouteGuide/", "/users.Users/")
FAMILIES = ("alpha", "beta", "gamma", "delta", "epsilon")
HOSTS = ("*", "a.example.com", "*.example.com", "b.a.example.com", "localhost")  # overlapping: fallbacks and conflicts
PORTS = (50051, 8080)
EDGE = EdgeRole(listen_address="127.0.0.1", listen_port=10000)
TYPOS = ("xds.servcie", "xds.Service", "XDS.PORT", "xds.3.port", "xds.10.service", "xds.route.prefixes", "xds.frobnicate")

# Any string, surrogates and control characters included.
any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=40) | st.text(max_size=5000)


def _duration(grammar: g.Duration) -> st.SearchStrategy[str]:
    units = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

    def written(ms: int, unit: str) -> str:
        exact = Decimal(ms) / Decimal(units[unit])
        text = format(exact.normalize(), "f") if exact == exact.quantize(Decimal("1e-9")) else ""
        return f"{text}{unit}" if text else f"{ms}ms"

    return st.builds(written, st.integers(grammar.minimum_ms, grammar.maximum_ms), st.sampled_from(sorted(units)))


def _listed(item: st.SearchStrategy[str], low: int, high: int) -> st.SearchStrategy[str]:
    return st.lists(item, min_size=low, max_size=high, unique=True).map(",".join)


@functools.cache  # building and validating a strategy costs more than drawing from it
def valid_value(spec: LabelSpec) -> st.SearchStrategy[str]:
    """Values the label's grammar accepts, from its own definition."""
    grammar = spec.grammar
    if spec.name == "service":
        return st.sampled_from(SERVICES)
    if isinstance(grammar, g.Duration):
        return _duration(grammar)
    if isinstance(grammar, g.Integer):
        return st.integers(grammar.low, grammar.high).map(str)
    if isinstance(grammar, g.Percent):
        return st.integers(1, 100_000_000).map(lambda n: str(Decimal(n) / Decimal(1_000_000))) | st.just("12.5%")
    if isinstance(grammar, g.Choice):
        return st.sampled_from([member.value for member in grammar.kind])
    if isinstance(grammar, g.Words):
        return st.sampled_from([word for word, _ in grammar.values])
    if isinstance(grammar, g.OrWords):
        return st.sampled_from([word for word, _ in grammar.words]) | valid_value(LabelSpec(spec.name, grammar.other, None))
    if isinstance(grammar, g.Pattern):
        return st.from_regex(grammar.regex, fullmatch=True).filter(lambda s: not grammar.max_chars or len(s) <= grammar.max_chars)
    if isinstance(grammar, g.Hosts):
        generated = st.from_regex(g._HOST, fullmatch=True).filter(lambda h: len(h) <= g.MAX_HOST_CHARS)
        return _listed(st.sampled_from(HOSTS), 1, 3) | _listed(generated, 1, 4)
    if isinstance(grammar, g.Headers):
        name = st.from_regex(g._HEADER_NAME, fullmatch=True).filter(lambda n: ":" not in n)
        match = st.tuples(name, st.none() | st.from_regex(r"[\x21-\x2b\x2d-\x7e]{1,20}", fullmatch=True))
        return st.lists(match, min_size=1, max_size=4, unique_by=lambda m: m[0]).map(
            lambda ms: ",".join(n if v is None else f"{n}={v}" for n, v in ms)
        )
    if isinstance(grammar, g.Weights):
        pair = st.tuples(st.sampled_from(SERVICES), st.integers(0, g.MAX_WEIGHT))
        return st.lists(pair, min_size=1, max_size=3, unique_by=lambda p: p[0]).filter(lambda ps: sum(w for _, w in ps) > 0).map(
            lambda ps: ",".join(f"{n}:{w}" for n, w in ps)
        )
    if isinstance(grammar, g.ServiceNames):
        return _listed(st.sampled_from(SERVICES), 0, 3)
    if isinstance(grammar, g.Conditions):
        return _listed(st.sampled_from(grammar.allowed), 1, 4)
    routing = _routing_value(grammar)
    if routing is not None:
        return routing
    auth = _auth_and_patch_value(grammar)
    if auth is not None:
        return auth
    raise TypeError(f"no generator for {spec.name}")


_HEADER_NAMES = st.from_regex(rg._HEADER_NAME, fullmatch=True).filter(lambda n: n != "host")
# Regexes RE2 and Envoy accept (and a few they refuse: the grammar must turn those into problems).
_REGEXES = st.sampled_from([r"v[0-9]+", r"[a-z]{2}", r"(?i)acme-.*", r"grpc-(python|go)/1\.[0-9]+.*", r"a{100}", r"(a)\1", r"(?=x)"])
_MATCH_VALUE = st.from_regex(r"[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?", fullmatch=True)


def _routing_value(grammar: g.Grammar[Any]) -> st.SearchStrategy[str] | None:
    """Values of the routing grammars of issue 17 (route_grammar.py), or None for other grammars."""
    kinds = st.sampled_from(["exact", "prefix", "suffix", "contains"])
    if isinstance(grammar, rg.HeaderCondition):
        string = st.tuples(st.sampled_from(["", "!"]), kinds, _MATCH_VALUE).map(lambda t: f"{t[0]}{t[1]}:{t[2]}")
        return st.sampled_from(["present", "absent"]) | string | _REGEXES.map(lambda r: "regex:" + r)
    if isinstance(grammar, rg.QueryCondition):
        return st.just("present") | st.tuples(kinds, _MATCH_VALUE).map(lambda t: f"{t[0]}:{t[1]}") | _REGEXES.map(lambda r: "regex:" + r)
    if isinstance(grammar, rg.HeaderValue):
        return _MATCH_VALUE
    if isinstance(grammar, rg.HeaderNames):
        return _listed(_HEADER_NAMES, 1, 3)
    if isinstance(grammar, rg.HostRewrite):
        return st.sampled_from(["upstream", "orders.internal", "a.example.com:8443"])
    if isinstance(grammar, rg.Origins):
        return _listed(st.sampled_from(["*", "https://app.example.com", "http://localhost:8080", "https://*.example.com"]), 1, 3)
    if isinstance(grammar, rg.Methods):
        return _listed(st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]), 1, 3)
    if isinstance(grammar, rg.WholeSeconds):
        return st.integers(1, 86_400).map(lambda n: f"{n}s")
    if isinstance(grammar, rg.AbortStatus):
        return st.sampled_from(sorted(rg.GRPC_STATUSES)).map(str.upper) | st.integers(400, 599).map(str)
    return None


# A real RSA key (Envoy parses an inline JWKS when it loads the listener), and patches that apply to
# a Cluster and a Route alike.
_JWKS = '{"keys": [{"kty": "RSA", "alg": "RS256", "kid": "golden", "n": "kiSJ6BaOz9hcJyX7ZvVnWUYst8Dwu5uohusHiGwmMmAc_O5oYy9LCTfD0LqEPhNMnWin2Neo0wp0IF2uUfIehGEdAyeVSdQ_hsUQs7k9iF_ovjvD1T54qatO9v4dUvaXcn2kSQjznKfZUlipGpvweFvGsqDcDEv1oNy-lVV_LpQUF6xEAhzgXOt_Ccmsv8ZH9p_e2Hs8ENoNIbH0XgFX4ruROy2Xm59FN0cVttyOTUspIfQTqJeU73uaC0R09GH60prz78HKXbNs0WYQtEFDrFnJSH5ICgR-KqcCMJzs4fHMr5vzrkTL4aSRv4OU6IIK0k1WYgnB88hekbDs13Q-kQ", "e": "AQAB"}]}'
_PATCHES = ("{}", '{"metadata": {"filter_metadata": {"fuzz": {"k": "v"}}}}', '{"metadata": null}')


def _auth_and_patch_value(grammar: g.Grammar[Any]) -> st.SearchStrategy[str] | None:
    """Values of the JWT and escape-hatch grammars (jwt_grammar.py, json_grammar.py), or None."""
    if isinstance(grammar, jwtg.Url):
        return st.sampled_from(["https://issuer.example.com", "http://127.0.0.1:8080/jwks.json", "https://login.example.com:8443/t/keys"])
    if isinstance(grammar, jwtg.Audiences):
        return _listed(st.sampled_from(["orders", "api", "urn:example:aud"]), 1, 3)
    if isinstance(grammar, jg.Jwks):
        return st.just(_JWKS)
    if isinstance(grammar, jg.MergePatch):
        return st.sampled_from(_PATCHES)
    return None


def family_labels(family: LabelFamily) -> st.SearchStrategy[tuple[str, str]]:
    """A label of a family (`route.header.<name>`): a name its key grammar accepts, and a value."""
    key = st.from_regex(family.key.regex, fullmatch=True).filter(lambda k: len(k) <= 40)
    return st.tuples(key.map(lambda k: family.prefix + k), valid_value(LabelSpec(family.prefix, family.grammar, None)))


@functools.cache
def label_value(spec: LabelSpec) -> st.SearchStrategy[str]:
    """Valid values, nearly valid ones (a valid value with anything appended), and anything."""
    nearly = st.tuples(valid_value(spec), st.text(alphabet=st.characters(exclude_categories=()), max_size=3)).map("".join)
    return st.one_of(valid_value(spec), nearly, any_text)


_SPEC_SETS = st.lists(st.sampled_from([s for s in LABELS if s.name != "service"]), max_size=8, unique_by=lambda s: s.name)
_PORT_SETS = st.lists(st.sampled_from(PORTS), min_size=1, max_size=2, unique=True)
_ODD_KEYS = st.sampled_from(TYPOS) | any_text.map(lambda text: PREFIX + text) | any_text


@st.composite
def _declaration_labels(draw: st.DrawFn, prefix: str, valid_only: bool, service: str | None = None) -> dict[str, str]:
    specs = draw(_SPEC_SETS)
    labels = {prefix + "service": service or draw(st.sampled_from(SERVICES))}
    if valid_only and draw(st.booleans()):
        # Distinct prefixes let several services share a host: fallbacks, shadows and orders to check.
        labels[prefix + "route.prefix"] = draw(st.sampled_from(PREFIXES))
    for spec in specs:
        labels[prefix + spec.name] = draw(valid_value(spec) if valid_only else label_value(spec))
    for family in draw(st.lists(st.sampled_from(LABEL_FAMILIES), max_size=2)):
        name, value = draw(family_labels(family))
        labels[prefix + name] = value if valid_only else draw(st.sampled_from([value, value + "\x00", "!"]))
    return labels


declaration_labels = functools.cache(_declaration_labels)


@st.composite
def _container(draw: st.DrawFn, name: str, valid_only: bool, service: str | None = None) -> ContainerDefinition:
    ports = draw(_PORT_SETS)
    labels = draw(declaration_labels(PREFIX, valid_only, service))
    if len(ports) > 1:
        labels[PREFIX + "port"] = str(ports[0])
        if draw(st.booleans()):
            labels.update(draw(declaration_labels(f"{PREFIX}1.", valid_only)))
            labels[f"{PREFIX}1.port"] = str(ports[1])
    if not valid_only and draw(st.booleans()):
        key = draw(_ODD_KEYS)
        labels[key] = draw(any_text)
    return ContainerDefinition(name=name, labels=labels, port_mappings=tuple(PortMapping(p) for p in ports))


container = functools.cache(_container)


@st.composite
def cluster_views(draw: st.DrawFn, valid_only: bool = False) -> list[ClusterState]:
    """1-6 task definitions of a few families, each with 1-2 tasks (random status and start time)."""
    tds: list[TaskDefinition] = []
    for i in range(draw(st.integers(3 if valid_only else 1, 6))):
        # Valid sets: mostly one family per task definition, so that fewer declarations are refused.
        family = FAMILIES[i % len(FAMILIES)] if valid_only and draw(st.integers(0, 3)) else draw(st.sampled_from(FAMILIES))
        revision = draw(st.integers(1, 3))
        arn = f"arn:aws:ecs:us-east-1:1:task-definition/{family}:{revision}"
        if any(td.arn == arn for td in tds):
            continue
        # Valid sets: often a service of its own per task definition, so that fewer are refused.
        own = SERVICES[i % len(SERVICES)] if valid_only and draw(st.booleans()) else None
        containers = [draw(container("app", valid_only, own))]
        if draw(st.integers(0, 3)) == 0:
            containers.append(draw(container("side", valid_only)))
        tds.append(TaskDefinition(arn=arn, family=family, revision=revision, network_mode="awsvpc", containers=tuple(containers)))
    tasks = []
    for n, td in enumerate(tds):
        for k in range(draw(st.integers(1, 2))):
            address = f"127.0.{n + 1}.{k + 1}"
            status = draw(st.sampled_from(["RUNNING", "RUNNING", "PENDING", "DEACTIVATING"]))
            tasks.append(
                Task(
                    arn=f"arn:aws:ecs:us-east-1:1:task/fuzz/{n}-{k}",
                    cluster="fuzz",
                    task_definition_arn=td.arn,
                    group=f"service:{td.family}",
                    last_status=status,
                    desired_status="STOPPED" if status == "DEACTIVATING" else "RUNNING",
                    health_status="HEALTHY",
                    availability_zone=draw(st.sampled_from(["us-east-1a", "us-east-1b"])),
                    container_health={c.name: "HEALTHY" for c in td.containers},
                    endpoints=tuple(ContainerEndpoint(c.name, m.container_port, address, m.container_port) for c in td.containers for m in c.port_mappings),
                    started_at=None if status == "PENDING" else float(draw(st.integers(0, 5))),
                )
            )
    return [ClusterState(cluster="fuzz", tasks=tuple(tasks), task_definitions={td.arn: td for td in tds}, synced_at=0.0)]


def check_problems(views: list[ClusterState], mesh: Mesh) -> None:
    """Every problem names a label its task definition set, and every text in it can be encoded."""
    set_labels: dict[str, set[str]] = {}
    for view in views:
        for td in view.task_definitions.values():
            set_labels.setdefault(td.display_name, set()).update(
                repr(key[:77] + "..." if len(key) > 80 else key)[1:-1] for c in td.containers for key in c.labels
            )
    for problem in mesh.problems:
        assert problem.label, problem
        assert problem.label in set_labels.get(problem.task_definition, set()), (problem.label, problem.task_definition, problem.message)
        for text in (problem.message, problem.label, problem.value or "", problem.service or ""):
            text.encode("utf-8")
        assert problem.value is None or len(problem.value) <= 4 * 80, problem.value


def static_bootstrap(resources: list[Resources]) -> dict[str, Any]:
    """The resources of some roles in one static bootstrap: EDS inlined as STATIC load assignments,
    each listener's RDS inlined as its route_config."""
    bootstrap = bootstrap_pb2.Bootstrap()
    clusters: dict[str, cluster_pb2.Cluster] = {}
    for found in resources:
        for name, message in found.of(TypeUrl.CLUSTER).items():
            if name in clusters or message.type != cluster_pb2.Cluster.EDS:  # type: ignore[attr-defined]
                clusters.setdefault(name, message)  # type: ignore[arg-type]
                continue
            static = cluster_pb2.Cluster()
            static.CopyFrom(message)
            static.ClearField("eds_cluster_config")
            static.type = cluster_pb2.Cluster.STATIC
            static.load_assignment.CopyFrom(found.of(TypeUrl.ENDPOINT)[name])
            clusters[name] = static
        routes = found.of(TypeUrl.ROUTE)
        for message in found.of(TypeUrl.LISTENER).values():
            listener = listener_pb2.Listener()
            listener.CopyFrom(message)
            for chain in listener.filter_chains:
                for network_filter in chain.filters:
                    manager = hcm_pb2.HttpConnectionManager()
                    if network_filter.typed_config.Unpack(manager) and manager.HasField("rds"):
                        manager.route_config.CopyFrom(routes[manager.rds.route_config_name])
                        network_filter.typed_config.Pack(manager)
            bootstrap.static_resources.listeners.append(listener)
    bootstrap.static_resources.clusters.extend(clusters[name] for name in sorted(clusters))
    return json_format.MessageToDict(bootstrap, preserving_proto_field_name=True)


def roles_of(mesh: Mesh) -> list[Resources]:
    """The edge, and the sidecar of the service with the most upstreams (its outbound routes)."""
    found = [translate(mesh, EDGE)]
    routed = [s for s in mesh.services if s.subset_of is None]
    if routed:
        chosen = max(routed, key=lambda s: (len(s.upstreams), s.name))
        found.append(translate(mesh, SidecarRole(service=chosen.name)))
    return found


def envoy_validate(envoy: str, mesh: Mesh, work: Path) -> tuple[bool, str]:
    path = work / "bootstrap.json"
    path.write_text(json.dumps(static_bootstrap(roles_of(mesh))))
    result = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "-l", "error"], capture_output=True, text=True, timeout=120)
    return result.returncode == 0, (result.stdout + result.stderr)[-2000:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=20000, help="arbitrary strings fed to single labels")
    parser.add_argument("--sets", type=int, default=5000, help="random label sets built into meshes")
    parser.add_argument("--envoy", type=int, default=300, help="accepted label sets validated by Envoy")
    args = parser.parse_args()
    from controlplane.demo.envoy import envoy_binary
    from controlplane.model.labels import parse_container_labels

    report: dict[str, Any] = {}
    started = time.process_time()
    counts = {"accepted": 0, "refused": 0}

    @settings(max_examples=args.values, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(LABELS).flatmap(lambda spec: st.tuples(st.just(spec), label_value(spec))))
    def one_label(drawn: tuple[LabelSpec, str]) -> None:
        spec, value = drawn
        labels = {"xds.service": "orders", f"xds.{spec.name}": value} if spec.name != "service" else {"xds.service": value}
        parsed = parse_container_labels(ContainerDefinition("app", labels, (PortMapping(50051),)))
        for problem in parsed.problems:
            assert problem.label in labels and problem.message.encode("utf-8"), problem
        counts["accepted" if parsed.declarations else "refused"] += 1

    one_label()
    report["values"] = {"examples": args.values, **counts, "cpu_seconds": round(time.process_time() - started, 1)}

    sizes: list[int] = []
    build_ms: list[float] = []

    @settings(max_examples=args.sets, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cluster_views())
    def label_sets(views: list[ClusterState]) -> None:
        begin = time.process_time()
        mesh = build_mesh(views)
        build_ms.append((time.process_time() - begin) * 1000)
        check_problems(views, mesh)
        sizes.append(len(mesh.problems))

    started = time.process_time()
    label_sets()
    report["sets"] = {
        "examples": args.sets, "median_problems": statistics.median(sizes), "max_problems": max(sizes),
        "median_build_ms": round(statistics.median(build_ms), 3), "cpu_seconds": round(time.process_time() - started, 1),
    }

    envoy = envoy_binary()
    outcomes: list[bool] = []
    failures: list[str] = []
    services: list[int] = []

    with tempfile.TemporaryDirectory() as work:

        @settings(max_examples=args.envoy, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.booleans().flatmap(lambda anything: cluster_views(valid_only=not anything)))
        def accepted_sets(views: list[ClusterState]) -> None:
            mesh = build_mesh(views)
            if not mesh.services:
                return
            ok, output = envoy_validate(envoy, mesh, Path(work))
            outcomes.append(ok)
            services.append(len(mesh.services))
            if not ok and len(failures) < 3:
                failures.append(output)
            assert ok, output

        started_wall = time.monotonic()
        try:
            if args.envoy:
                accepted_sets()
        finally:
            report["envoy"] = {
                "validated": len(outcomes), "accepted_by_envoy": sum(outcomes),
                "median_services": statistics.median(services) if services else 0, "max_services": max(services, default=0),
                "with_3_or_more_services": sum(1 for n in services if n >= 3),
                "wall_seconds": round(time.monotonic() - started_wall, 1), "failures": failures,
            }
            print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
