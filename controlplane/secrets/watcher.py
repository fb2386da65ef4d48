"""Keeps every configured certificate current: files are checked often (a stat), Secrets Manager secrets
on a slower period (an API call each). A source that stops being readable keeps its last good content."""

from __future__ import annotations

import asyncio
import time
from typing import Callable, Sequence

import structlog

from controlplane.secrets.certificate import Certificate, CertificateError, CertificateSet, TrustedCa
from controlplane.secrets.sources import CertificateSource, Loaded

log = structlog.get_logger()


class CertificateWatcher:
    """Reads every source at start (failing loudly), then re-reads on change and calls `on_change`."""

    def __init__(
        self,
        sources: Sequence[CertificateSource],
        on_change: Callable[[CertificateSet], None],
        *,
        client_ca: CertificateSource | None = None,
        file_poll_seconds: float = 2.0,
        secret_refresh_seconds: float = 300.0,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        names = [source.name for source in sources]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise CertificateError(f"certificate names must be unique; used more than once: {', '.join(duplicates)}")
        self._sources = list(sources)
        self._client_ca = client_ca
        self._on_change = on_change
        self._on_failure = on_failure or (lambda name, error: None)
        self._file_poll = file_poll_seconds
        self._secret_refresh = secret_refresh_seconds
        self._loaded: dict[str, Loaded] = {}
        self._fingerprints: dict[str, object] = {}
        self._last_read: dict[str, float] = {}

    @property
    def current(self) -> CertificateSet:
        certificates = tuple(
            loaded for source in self._sources if isinstance(loaded := self._loaded.get(source.name), Certificate)
        )
        ca = self._loaded.get(self._client_ca.name) if self._client_ca else None
        return CertificateSet(certificates=certificates, client_ca=ca if isinstance(ca, TrustedCa) else None)

    def _all(self) -> list[CertificateSource]:
        return self._sources + ([self._client_ca] if self._client_ca else [])

    def load(self) -> CertificateSet:
        """First read of every source, blocking; any failure is fatal here (nothing good to keep yet)."""
        for source in self._all():
            self._fingerprints[source.name] = source.fingerprint()
            loaded = source.read()
            self._loaded[source.name] = loaded
            self._last_read[source.name] = time.monotonic()
            self._log_loaded(loaded, first=True)
        return self.current

    async def run(self) -> None:
        """Re-read changed sources until cancelled; publishes a new CertificateSet only when content changed."""
        while True:
            await asyncio.sleep(self._file_poll)
            if await self.refresh():
                self._on_change(self.current)

    async def refresh(self, force: bool = False) -> bool:
        """One pass over the sources that are due; True when any content changed."""
        changed = False
        now = time.monotonic()
        for source in self._all():
            if source.polled:
                fingerprint = source.fingerprint()
                if not force and fingerprint == self._fingerprints.get(source.name):
                    continue
            else:
                if not force and now - self._last_read.get(source.name, 0.0) < self._secret_refresh:
                    continue
                fingerprint = None
            self._last_read[source.name] = now
            try:
                loaded = await asyncio.to_thread(source.read)
            except CertificateError as error:
                # Keep serving the last good content; a half-written file is usually complete at the next poll.
                log.warning("certificate.reload_failed", certificate=source.name, error=str(error))
                self._on_failure(source.name, str(error))
                continue
            self._fingerprints[source.name] = fingerprint
            if loaded != self._loaded.get(source.name):
                self._loaded[source.name] = loaded
                self._log_loaded(loaded, first=False)
                changed = True
        return changed

    @staticmethod
    def _log_loaded(loaded: Loaded, first: bool) -> None:
        event = "certificate.loaded" if first else "certificate.rotated"
        if isinstance(loaded, Certificate):
            expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(loaded.not_after))
            log.info(event, certificate=loaded.name, source=loaded.source, hosts=list(loaded.hosts), not_after=expires)
        else:
            log.info(event, certificate=loaded.name, source=loaded.source, kind="client_ca")
