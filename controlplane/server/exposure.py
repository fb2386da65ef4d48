"""Where xDS may be served unprotected: loopback only, unless the operator says --xds-insecure.

xDS answers carry every service's task addresses and task ARNs and decide where every proxy sends
its traffic: off loopback they need TLS (nobody reads or rewrites them on the way) and proxy
authentication (nobody but our proxies asks for them). Contour refuses to start without TLS
unless told --insecure; so do we.
"""

from __future__ import annotations

from controlplane.errors import SettingsError
from controlplane.server.listen import is_loopback


def xds_exposure_gaps(address: str, *, tls: bool, authenticated: bool, insecure: bool) -> list[str]:
    """What the xDS server lacks at `address` (empty when nothing): logged when --xds-insecure
    accepts it, SettingsError without it."""
    if is_loopback(address):
        return []
    gaps = ([] if tls else ["plaintext (no --xds-tls-cert/--xds-tls-key)"]) + (
        [] if authenticated else ["proxies not authenticated (no --xds-tls-client-ca or --xds-tokens-file)"]
    )
    if gaps and not insecure:
        raise SettingsError(
            f"xDS address {address} is not loopback and the xDS server would be {' and '.join(gaps)}: "
            "serve it with TLS and proxy authentication (docs/security.md), "
            "or pass --xds-insecure (CONTROLPLANE_XDS_INSECURE=true) to accept that"
        )
    return gaps
