"""SDS Secrets for the edge: one per certificate, one for the CA that verifies client certificates.

Listeners refer to secrets by name, so a rotated certificate changes only its Secret: Envoy swaps it
for new connections without touching the listener (no drain, no restart)."""

from __future__ import annotations

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2

from controlplane.secrets.certificate import Certificate, CertificateSet, TrustedCa

CLIENT_CA_SECRET = "edge-client-ca"


def certificate_secret_name(certificate: Certificate) -> str:
    return f"edge-certificate/{certificate.name}"


def certificate_secret(certificate: Certificate) -> secret_pb2.Secret:
    return secret_pb2.Secret(
        name=certificate_secret_name(certificate),
        tls_certificate=common_pb2.TlsCertificate(
            certificate_chain=base_pb2.DataSource(inline_string=certificate.chain_pem),
            private_key=base_pb2.DataSource(inline_string=certificate.key_pem),
        ),
    )


def client_ca_secret(ca: TrustedCa) -> secret_pb2.Secret:
    return secret_pb2.Secret(
        name=CLIENT_CA_SECRET,
        validation_context=common_pb2.CertificateValidationContext(trusted_ca=base_pb2.DataSource(inline_string=ca.pem)),
    )


def edge_secrets(certificates: CertificateSet) -> dict[str, secret_pb2.Secret]:
    """Every Secret the edge listener names, by name."""
    secrets = {certificate_secret_name(c): certificate_secret(c) for c in certificates.certificates}
    if certificates.client_ca is not None:
        secrets[CLIENT_CA_SECRET] = client_ca_secret(certificates.client_ca)
    return secrets
