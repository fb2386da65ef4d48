"""Edge TLS: certificates checked when loaded, SNI names given to the best certificate, SDS Secrets
and TLS filter chains in the edge's resources, Secrets served by name on the xDS stream, rotation
picked up from files and from Secrets Manager."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import boto3
import pytest
from envoy.config.listener.v3 import listener_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2, tls_pb2

from controlplane.localecs import LocalEcsServer
from controlplane.cache.snapshot import build_snapshot
from controlplane.model.mesh import RouteMatch, Service
from controlplane.server.registry import ProxyRegistry
from controlplane.server.stream import SotwStream
from controlplane.secrets.certificate import CertificateError, CertificateSet, parse_certificate
from controlplane.secrets.sources import PemFiles, SecretsManagerCertificate, file_source
from controlplane.secrets.watcher import CertificateWatcher
from controlplane.translate import translate
from controlplane.translate.edge_options import EdgeOptions
from controlplane.translate.edge_tls import server_names
from controlplane.xds.types import TypeUrl

from controlplane.demo.certificates import LocalCa
from .xds import CDS, EDS, LDS, ROLE, mesh, names, request, service

CA = LocalCa()


def certificate(name: str, *hosts: str):  # type: ignore[no-untyped-def]
    issued = CA.issue(*hosts)
    return parse_certificate(name, issued.cert_pem, issued.key_pem, "test")


def hosted(name: str, *hosts: str) -> Service:
    return replace(service(name, "127.0.0.1"), route=RouteMatch(hosts=hosts, path_prefix=f"/{name}/"))


def test_a_key_that_is_not_the_certificates_is_refused() -> None:
    one, other = CA.issue("a.test"), CA.issue("a.test")
    with pytest.raises(CertificateError, match="does not belong to the first certificate"):
        parse_certificate("api", one.cert_pem, other.key_pem, "test")
    with pytest.raises(CertificateError, match="no PEM certificate"):
        parse_certificate("api", "garbage", one.key_pem, "test")


def test_each_name_goes_to_the_certificate_that_covers_it_best() -> None:
    wildcard, exact, other = certificate("wild", "*.shop.test"), certificate("cart", "cart.shop.test"), certificate("b", "b.test")
    m = mesh(hosted("cart", "cart.shop.test"), hosted("pay", "pay.shop.test"), hosted("b", "b.test"), hosted("x", "x.other"))
    names = server_names(m, [wildcard, exact, other])
    assert names == {"wild": ("*.shop.test", "pay.shop.test"), "cart": ("cart.shop.test",), "b": ("b.test",)}


def test_the_edge_gets_secrets_and_a_tls_chain_per_certificate() -> None:
    a, b = certificate("a", "a.test"), certificate("b", "b.test")
    options = EdgeOptions(certificates=CertificateSet(certificates=(a, b)))
    resources = translate(mesh(hosted("sa", "a.test"), hosted("sb", "b.test")), ROLE, edge=options)

    secrets = resources.of(TypeUrl.SECRET)
    assert sorted(secrets) == ["edge-certificate/a", "edge-certificate/b"]
    assert isinstance(secrets["edge-certificate/a"], secret_pb2.Secret)
    assert secrets["edge-certificate/a"].tls_certificate.private_key.inline_string == a.key_pem
    (listener,) = resources.of(TypeUrl.LISTENER).values()
    assert isinstance(listener, listener_pb2.Listener)
    assert [c.name for c in listener.filter_chains] == ["sni/a", "sni/b", "default"]
    assert list(listener.filter_chains[1].filter_chain_match.server_names) == ["b.test"]
    assert [f.name for f in listener.listener_filters] == ["envoy.filters.listener.tls_inspector"]
    context = tls_pb2.DownstreamTlsContext()
    assert listener.filter_chains[2].transport_socket.typed_config.Unpack(context)
    assert list(context.common_tls_context.alpn_protocols) == ["h2", "http/1.1"]
    assert context.common_tls_context.tls_certificate_sds_secret_configs[0].name == "edge-certificate/a"
    assert not context.HasField("require_client_certificate")


def test_without_certificates_the_edge_is_plaintext_and_has_no_secrets() -> None:
    resources = translate(mesh(hosted("sa", "a.test")), ROLE, edge=EdgeOptions())
    (listener,) = resources.of(TypeUrl.LISTENER).values()
    assert not resources.of(TypeUrl.SECRET)
    assert len(listener.filter_chains) == 1 and not listener.filter_chains[0].HasField("transport_socket")


def test_file_certificates_rotate_and_a_broken_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    first = CA.issue("a.test")
    cert, key = first.write(tmp_path, "a")
    seen: list[CertificateSet] = []
    watcher = CertificateWatcher([file_source(f"a={cert},{key}")], seen.append, file_poll_seconds=0.01)
    assert watcher.load().certificates[0].chain_pem == first.cert_pem

    cert.write_text("-----BEGIN CERTIFICATE-----\nbroken\n")
    assert asyncio.run(watcher.refresh()) is False
    assert watcher.current.certificates[0].chain_pem == first.cert_pem

    second = CA.issue("a.test")
    second.write(tmp_path, "a")
    assert asyncio.run(watcher.refresh()) is True
    assert watcher.current.certificates[0].chain_pem == second.cert_pem


def test_secrets_manager_certificates_are_read_and_refreshed() -> None:
    with LocalEcsServer() as server:
        client = boto3.client("secretsmanager", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
        first, second = CA.issue("sm.test"), CA.issue("sm.test")
        client.create_secret(Name="edge/sm", SecretString=json.dumps({"certificate": first.cert_pem, "private_key": first.key_pem}))
        watcher = CertificateWatcher([SecretsManagerCertificate("sm", "edge/sm", client)], lambda _: None, secret_refresh_seconds=3600)
        loaded = watcher.load().certificates[0]
        assert loaded.hosts == ("sm.test",) and "edge/sm" in loaded.source

        client.put_secret_value(SecretId="edge/sm", SecretString=json.dumps({"certificate": second.cert_pem, "private_key": second.key_pem}))
        assert asyncio.run(watcher.refresh()) is False  # not due yet
        assert asyncio.run(watcher.refresh(force=True)) is True
        assert watcher.current.certificates[0].chain_pem.startswith(second.cert_pem.rstrip("\n"))

        client.put_secret_value(SecretId="edge/sm", SecretString="not json")
        assert asyncio.run(watcher.refresh(force=True)) is False
        with pytest.raises(CertificateError, match='"certificate" and "private_key"'):
            SecretsManagerCertificate("sm", "edge/sm", client).read()
        with pytest.raises(CertificateError, match="ResourceNotFoundException"):
            SecretsManagerCertificate("gone", "edge/none", client).read()


def test_certificate_settings_are_explained() -> None:
    from controlplane.errors import SettingsError

    with pytest.raises(SettingsError, match="NAME=CERT_FILE,KEY_FILE"):
        file_source("/certs/a.crt")
    with pytest.raises(CertificateError, match="unique"):
        CertificateWatcher([PemFiles("a", Path("x"), Path("y")), PemFiles("a", Path("z"), Path("w"))], lambda _: None)


def test_the_stream_serves_secrets_by_name_and_a_rotation_pushes_only_the_secret() -> None:
    m = mesh(hosted("sa", "a.test"))
    before = EdgeOptions(certificates=CertificateSet(certificates=(certificate("a", "a.test"),)))
    after = EdgeOptions(certificates=CertificateSet(certificates=(certificate("a", "a.test"),)))
    snap = build_snapshot(translate(m, ROLE, edge=before))
    record = ProxyRegistry().open(node_id="edge-1", node_cluster="edge", role=ROLE.key, peer="ipv4:127.0.0.1:1")
    sotw = SotwStream(record, nonce_prefix="t-")

    class Stream:  # the responses as the proxy reads them off the wire
        def on_request(self, *args):  # type: ignore[no-untyped-def]
            return [response.message() for response in sotw.on_request(*args)]

        def push(self, *args):  # type: ignore[no-untyped-def]
            return [response.message() for response in sotw.push(*args)]

    stream = Stream()
    (cds,) = stream.on_request(request(CDS), snap)
    stream.on_request(request(LDS), snap)
    stream.on_request(request(CDS, ack=cds), snap)
    eds, lds = stream.on_request(request(EDS, tuple(names(cds))), snap)
    stream.on_request(request(LDS, ack=lds), snap)
    (sds,) = stream.on_request(request(TypeUrl.SECRET, ("edge-certificate/a", "edge-certificate/unknown")), snap)
    assert sds.type_url == TypeUrl.SECRET.value and len(sds.resources) == 1
    assert stream.on_request(request(TypeUrl.SECRET, ("edge-certificate/a", "edge-certificate/unknown"), ack=sds), snap) == []

    rotated = build_snapshot(translate(m, ROLE, edge=after), snap)
    (push,) = stream.push(rotated)
    assert push.type_url == TypeUrl.SECRET.value  # the listener refers to the secret by name: it is unchanged
    assert rotated.of(TypeUrl.LISTENER) == snap.of(TypeUrl.LISTENER)
