"""Docker labels -> service declarations: every label's valid values and the exact error messages."""

from __future__ import annotations

import pytest

from controlplane.discovery.state import ContainerDefinition, PortMapping
from controlplane.errors import LabelError
from controlplane.model.labels import parse_container, unknown_labels
from controlplane.model.mesh import Protocol, RouteMatch


def _container(labels: dict[str, str], ports: tuple[int, ...] = (50051,), name: str = "app") -> ContainerDefinition:
    return ContainerDefinition(name=name, labels=labels, port_mappings=tuple(PortMapping(p) for p in ports))


def _parse(labels: dict[str, str], ports: tuple[int, ...] = (50051,), prefix: str = "xds."):
    return parse_container(_container(labels, ports), prefix)


def _error(labels: dict[str, str], ports: tuple[int, ...] = (50051,), prefix: str = "xds.") -> LabelError:
    with pytest.raises(LabelError) as caught:
        parse_container(_container(labels, ports), prefix)
    return caught.value


def test_a_container_without_the_service_label_does_not_opt_in() -> None:
    assert _parse({"xds.port": "50051", "com.example.team": "payments"}) is None


def test_defaults_with_one_port_mapping() -> None:
    declaration = _parse({"xds.service": "orders"})

    assert declaration is not None
    assert (declaration.name, declaration.container, declaration.container_port) == ("orders", "app", 50051)
    assert declaration.protocol is Protocol.GRPC
    assert declaration.route == RouteMatch(hosts=("*",), path_prefix="/")


def test_every_label_set() -> None:
    declaration = _parse(
        {
            "xds.service": " orders-v2 ",
            "xds.port": "8080",
            "xds.protocol": "HTTP1",
            "xds.route.hosts": "Shop.example.com, *.api.example.com,shop.example.com,admin.example.com",
            "xds.route.prefix": "/routeguide.RouteGuide/",
        },
        ports=(50051, 8080),
    )

    assert declaration is not None
    assert declaration.name == "orders-v2"
    assert declaration.container_port == 8080
    assert declaration.protocol is Protocol.HTTP1
    assert declaration.route == RouteMatch(
        hosts=("*.api.example.com", "admin.example.com", "shop.example.com"), path_prefix="/routeguide.RouteGuide/"
    )


@pytest.mark.parametrize("name", ["a", "orders", "orders-2", "0rders", "a" * 63])
def test_valid_service_names(name: str) -> None:
    declaration = _parse({"xds.service": name})
    assert declaration is not None and declaration.name == name


@pytest.mark.parametrize("name", ["", "Orders", "orders_v2", "-orders", "orders-", "orders.v2", "a" * 64])
def test_invalid_service_names(name: str) -> None:
    error = _error({"xds.service": name})
    assert str(error) == (
        f"label xds.service={name!r}: expected a service name: lowercase letters, digits and '-', 1-63 characters"
    )
    assert (error.label, error.value) == ("xds.service", name)


@pytest.mark.parametrize("protocol,expected", [("grpc", Protocol.GRPC), ("http2", Protocol.HTTP2), ("Http1", Protocol.HTTP1)])
def test_valid_protocols(protocol: str, expected: Protocol) -> None:
    declaration = _parse({"xds.service": "orders", "xds.protocol": protocol})
    assert declaration is not None and declaration.protocol is expected


@pytest.mark.parametrize("protocol", ["", "thrift", "h2", "grpc-web"])
def test_invalid_protocols(protocol: str) -> None:
    error = _error({"xds.service": "orders", "xds.protocol": protocol})
    assert str(error) == f"label xds.protocol={protocol!r}: expected one of grpc, http2, http1, tcp"
    assert (error.label, error.value) == ("xds.protocol", protocol)


@pytest.mark.parametrize("port", ["http", "0", "65536", "-1", "50051.0", "", "5e4"])
def test_ports_that_are_not_integers_1_65535(port: str) -> None:
    error = _error({"xds.service": "orders", "xds.port": port})
    assert str(error) == (
        f"label xds.port={port!r}: expected an integer 1-65535, a containerPort of this container's portMappings"
    )
    assert (error.label, error.value) == ("xds.port", port)


def test_a_port_the_container_does_not_map() -> None:
    error = _error({"xds.service": "orders", "xds.port": "8080"}, ports=(50051, 9090))
    assert str(error) == (
        "label xds.port='8080': container 'app' has no portMappings entry with containerPort 8080 (it maps 50051, 9090)"
    )
    assert (error.label, error.value) == ("xds.port", "8080")


def test_a_port_label_is_required_when_several_ports_are_mapped() -> None:
    error = _error({"xds.service": "orders"}, ports=(50051, 9090))
    assert str(error) == (
        "label xds.service='orders': container 'app' maps 50051, 9090: set xds.port to the containerPort that serves 'orders'"
    )
    # The problem names the label the user set, not the one they left out.
    assert (error.label, error.kind) == ("xds.service", "missing_label")


def test_a_port_label_is_required_when_no_port_is_mapped() -> None:
    error = _error({"xds.service": "orders"}, ports=())
    assert str(error) == (
        "label xds.service='orders': container 'app' maps no ports: set xds.port to the containerPort that serves 'orders'"
    )


def test_the_port_label_picks_one_of_several_mappings() -> None:
    declaration = _parse({"xds.service": "orders", "xds.port": "9090"}, ports=(50051, 9090))
    assert declaration is not None and declaration.container_port == 9090


@pytest.mark.parametrize(
    "hosts,expected",
    [
        ("*", ("*",)),
        ("shop.example.com", ("shop.example.com",)),
        ("*.example.com", ("*.example.com",)),
        ("localhost", ("localhost",)),
        ("b.example.com,a.example.com,", ("a.example.com", "b.example.com")),
    ],
)
def test_valid_hosts(hosts: str, expected: tuple[str, ...]) -> None:
    declaration = _parse({"xds.service": "orders", "xds.route.hosts": hosts})
    assert declaration is not None and declaration.route.hosts == expected


@pytest.mark.parametrize("hosts", ["", ",", "shop example.com", "shop.example.com/api", "a.*.example.com", "-a.example.com", "http://x", "localhost:8080"])
def test_invalid_hosts(hosts: str) -> None:
    error = _error({"xds.service": "orders", "xds.route.hosts": hosts})
    assert str(error).startswith(
        f"label xds.route.hosts={hosts!r}: expected a comma-separated list of host names without a port (each at most "
        "253 characters), '*' or '*.domain' wildcards"
    )
    assert (error.label, error.value) == ("xds.route.hosts", hosts)


@pytest.mark.parametrize("prefix", ["/", "/api/", "/routeguide.RouteGuide/", "/v1/orders~x"])
def test_valid_path_prefixes(prefix: str) -> None:
    declaration = _parse({"xds.service": "orders", "xds.route.prefix": prefix})
    assert declaration is not None and declaration.route.path_prefix == prefix


@pytest.mark.parametrize("prefix", ["", "api", "/api v2", "/a?b=1", "/a#frag", "*"])
def test_invalid_path_prefixes(prefix: str) -> None:
    error = _error({"xds.service": "orders", "xds.route.prefix": prefix})
    assert str(error) == (
        f"label xds.route.prefix={prefix!r}: expected a path starting with '/' (letters, digits and -._~!$&'()*+,;=:@%/), "
        "e.g. /routeguide.RouteGuide/"
    )
    assert (error.label, error.value) == ("xds.route.prefix", prefix)


def test_a_custom_prefix_reads_its_own_labels_and_names_them_in_errors() -> None:
    declaration = _parse({"mesh/service": "orders", "mesh/protocol": "http2", "xds.protocol": "nonsense"}, prefix="mesh/")
    assert declaration is not None and declaration.protocol is Protocol.HTTP2

    assert _parse({"xds.service": "orders"}, prefix="mesh/") is None

    error = _error({"mesh/service": "orders", "mesh/protocol": "udp"}, prefix="mesh/")
    assert str(error) == "label mesh/protocol='udp': expected one of grpc, http2, http1, tcp"
    assert error.label == "mesh/protocol"


def test_unknown_labels_under_the_prefix_only() -> None:
    labels = {"xds.service": "a", "xds.retries": "3", "xds.route.prefixes": "/", "xdsport": "1", "other.port": "2"}
    assert unknown_labels(labels) == ["xds.retries", "xds.route.prefixes"]


@pytest.mark.parametrize(
    "label,value,ms",
    [
        ("xds.timeout.route", "1.1h", 3_960_000),
        ("xds.timeout.route", "2.01s", 2_010),
        ("xds.timeout.route", "0ms", 0),
        ("xds.timeout.route", "0", 0),
        ("xds.timeout.route", "0.0s", 0),
        ("xds.timeout.route", "24h", 86_400_000),
        ("xds.timeout.route", "0.001s", 1),
        ("xds.timeout.route", "1.5M", 90_000),
        ("xds.timeout.idle", "250ms", 250),
    ],
)
def test_durations_parse_exactly(label: str, value: str, ms: int) -> None:
    declaration = _parse({"xds.service": "orders", label: value})
    assert declaration is not None
    timeouts = declaration.policy.timeouts
    assert (timeouts.route_ms if label == "xds.timeout.route" else timeouts.idle_ms) == ms


@pytest.mark.parametrize(
    "value,detail",
    [
        ("9" * 400 + "s", ""),
        ("24.001h", ""),
        ("1.0005s", " (1.0005s is not a whole number of milliseconds)"),
        ("1e3s", ""),
        ("-1s", ""),
        ("5", ""),
        ("1.s", ""),
        ("٣s", ""),
    ],
)
def test_durations_out_of_grammar_or_bounds_state_the_bounds(value: str, detail: str) -> None:
    error = _error({"xds.service": "orders", "xds.timeout.route": value})
    if value.isascii():
        shown = repr(value) if len(value) <= 80 else repr(value[:77] + "...")
        assert str(error) == (
            f"label xds.timeout.route={shown}: expected a duration such as 250ms, 1.5s, 2m or 1h (whole milliseconds), "
            f"from 0 to 24h, 0 means none{detail}"
        )
    else:
        assert "expected printable ASCII text: character 1 is '٣'" in str(error)


def test_zero_is_below_the_minimum_of_durations_that_need_one() -> None:
    error = _error({"xds.service": "orders", "xds.timeout.idle": "0ms"})
    assert str(error).endswith("from 1ms to 24h")


@pytest.mark.parametrize(
    "value,message",
    [
        ("x" * 5000, "the value is 5000 characters long; at most 4096 are accepted"),
        ("orders\x00", "expected printable ASCII text: character 7 is '\\x00'"),
        ("ord\ud800ers", "expected printable ASCII text: character 4 is '\\ud800'"),
        ("ordérs", "expected printable ASCII text: character 4 is 'é'"),
        ("\u202eorders", "expected printable ASCII text: character 1 is '\\u202e'"),
    ],
)
def test_values_too_long_or_not_printable_ascii_are_refused_and_shown_escaped(value: str, message: str) -> None:
    error = _error({"xds.service": value})
    assert str(error).endswith(message)
    assert error.value is not None and len(error.value) <= 80
    str(error).encode("utf-8")  # encodable: it reaches logs, protobuf and terminals
    error.value.encode("utf-8")


@pytest.mark.parametrize("port", ["٣", "²", "1" * 5000, "0x50", " 50051 "])
def test_integers_are_ascii_digits_only(port: str) -> None:
    if port == " 50051 ":
        assert _parse({"xds.service": "orders", "xds.port": port}).container_port == 50051  # type: ignore[union-attr]
    else:
        assert _error({"xds.service": "orders", "xds.port": port}).label == "xds.port"
