"""What may listen where: xDS and metrics off loopback, and one process per port."""

from __future__ import annotations

import asyncio
import socket

import grpc
import pytest

from controlplane.admin.metrics import Metrics
from controlplane.errors import ListenError, SettingsError
from controlplane.server.exposure import xds_exposure_gaps
from controlplane.server.listen import SERVER_OPTIONS, bind, is_loopback


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.4.5", "::1", "[::1]", "localhost"])
def test_loopback_needs_nothing(address: str) -> None:
    assert is_loopback(address)
    assert xds_exposure_gaps(address, tls=False, authenticated=False, insecure=False) == []


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "10.0.0.5", "controlplane.internal"])
def test_off_loopback_plaintext_is_refused_naming_xds_insecure(address: str) -> None:
    with pytest.raises(SettingsError, match="--xds-insecure") as caught:
        xds_exposure_gaps(address, tls=False, authenticated=True, insecure=False)
    assert "plaintext" in str(caught.value) and "not authenticated" not in str(caught.value)


def test_off_loopback_tls_without_proxy_authentication_is_refused() -> None:
    with pytest.raises(SettingsError, match="proxies not authenticated"):
        xds_exposure_gaps("0.0.0.0", tls=True, authenticated=False, insecure=False)


def test_insecure_accepts_and_names_every_gap() -> None:
    assert xds_exposure_gaps("0.0.0.0", tls=True, authenticated=True, insecure=False) == []
    assert xds_exposure_gaps("0.0.0.0", tls=False, authenticated=False, insecure=True) == [
        "plaintext (no --xds-tls-cert/--xds-tls-key)",
        "proxies not authenticated (no --xds-tls-client-ca or --xds-tokens-file)",
    ]


def test_metrics_off_loopback_need_the_insecure_flag() -> None:
    with pytest.raises(SettingsError, match="--metrics-insecure"):
        Metrics().serve("0.0.0.0", 0)


def test_a_taken_port_is_one_clear_error_for_grpc_and_metrics() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        async def second_server() -> None:
            server = grpc.aio.server(options=list(SERVER_OPTIONS))
            bind(server, "xDS", "127.0.0.1", port, None)

        with pytest.raises(ListenError) as caught:
            asyncio.run(second_server())
        assert str(caught.value) == f"xDS cannot listen on 127.0.0.1:{port}: the port is in use (another controlplane serve on this host?)"
        with pytest.raises(ListenError, match=f"metrics cannot listen on 127.0.0.1:{port}: the port is in use"):
            Metrics().serve("127.0.0.1", port)


def test_reuseport_is_off_so_a_second_grpc_server_cannot_share_the_port() -> None:
    async def scenario() -> None:
        first = grpc.aio.server(options=list(SERVER_OPTIONS))
        port = bind(first, "xDS", "127.0.0.1", 0, None)
        second = grpc.aio.server()  # even with gRPC's default (SO_REUSEPORT on) on the second
        with pytest.raises(RuntimeError):
            second.add_insecure_port(f"127.0.0.1:{port}")
        await first.stop(0)

    asyncio.run(scenario())
