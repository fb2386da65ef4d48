"""A throwaway certificate authority made with openssl, for TLS between loopback processes."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Sequence


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


class Pki:
    """A CA in `directory` (ca.crt, ca.key) that issues certificates for loopback names."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-subj", "/CN=test-ca", "-days", "2",
                "-out", "ca.crt", cwd=directory)
        self.ca = directory / "ca.crt"

    def issue(self, name: str, *, uris: Sequence[str] = ()) -> tuple[Path, Path]:
        """(certificate, key) for `name`, valid for 127.0.0.1 and localhost, plus URI SANs `uris`."""
        cwd = self.directory
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-subj", f"/CN={name}", "-out", f"{name}.csr", cwd=cwd)
        sans = ",".join(["IP:127.0.0.1", "DNS:localhost", *(f"URI:{uri}" for uri in uris)])
        (cwd / f"{name}.ext").write_text(f"subjectAltName={sans}\nextendedKeyUsage=serverAuth,clientAuth\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", "2", "-out", f"{name}.crt", "-extfile", f"{name}.ext", cwd=cwd)
        return cwd / f"{name}.crt", cwd / f"{name}.key"
