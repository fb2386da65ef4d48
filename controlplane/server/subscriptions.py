"""The xDS subscription state machine of one stream, shared by state-of-the-world and Delta. No I/O:
requests and snapshots in, responses out, so the protocol rules can be tested without a network.

Per resource type (every type in ORDER) a stream keeps what the proxy asked for, what it holds
if it accepted everything we sent (`held`), what it had accepted at its last ACK (`acked`), and
what it rejected. The rules both protocols share live here, once:
- a response nonce that is not the latest we sent for its type is stale: its ACK or NACK is ignored;
- an ACK moves the response's changes into `acked`; a NACK is recorded (log, metric, admin API),
  the proxy is taken to stay on its last ACKed resources, and the rejected resources are offered
  again only after a backoff (doubling up to a cap), or at once when their content changes;
- on ADS, types are answered in ORDER, and the types from LDS on wait until the proxy has
  answered our last CDS response and subscribed to the endpoints of every cluster it accepted, so
  a route never points at a cluster that is still warming;
- make-before-break: a cluster gone from the snapshot stays, with its endpoints, while routes we
  sent or routes the proxy last ACKed still refer to it.
The subclasses (stream.SotwStream, delta.DeltaStream) read requests and shape responses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Generic, Iterable, Mapping, TypeVar

import structlog
from google.protobuf import any_pb2

from controlplane.cache.snapshot import PreparedResource, Snapshot, resource_digest, set_version
from controlplane.server.observer import NoObserver, StreamObserver
from controlplane.server.registry import ProxyRecord
from controlplane.xds.types import ORDER, TypeUrl

log = structlog.get_logger()

# Types a client may ask for without naming resources (state of the world: every resource).
WILDCARD_TYPES = frozenset({TypeUrl.CLUSTER, TypeUrl.LISTENER})
# From the listeners on, types wait on ADS until the clusters they may route to are warm.
GATED_TYPES = frozenset(ORDER[ORDER.index(TypeUrl.LISTENER) :])
SHORT = MappingProxyType({type_url: type_url.short for type_url in TypeUrl})  # for logs, without a lookup per call
_BY_URL = MappingProxyType({type_url.value: type_url for type_url in TypeUrl})
EMPTY: Mapping[str, PreparedResource] = MappingProxyType({})
_NONE: frozenset[str] = frozenset()

Request = TypeVar("Request")
Response = TypeVar("Response")


@dataclass(frozen=True, slots=True)
class NackBackoff:
    """How long a rejected resource waits before it is offered again: `first` seconds after the
    first NACK in a row, doubling with each further one, at most `maximum`."""

    first: float = 10.0
    maximum: float = 300.0

    def delay(self, nacks_in_a_row: int) -> float:
        return float(min(self.maximum, self.first * 2 ** min(max(nacks_in_a_row - 1, 0), 32)))


@dataclass(slots=True)
class Pending:
    """Our latest response of one type (its nonce is Subscription.nonce), until the proxy ACKs or NACKs it."""

    version: str
    sent_at: float
    changed: dict[str, PreparedResource]
    removed: tuple[str, ...]


@dataclass
class Subscription:
    """One resource type on one stream."""

    requested: bool = False
    wildcard: bool = False
    names: frozenset[str] = frozenset()
    sorted_names: tuple[str, ...] = ()
    held: dict[str, PreparedResource] = field(default_factory=dict)  # the proxy's state once it accepts what we sent
    acked: dict[str, PreparedResource] = field(default_factory=dict)  # its state at its last ACK
    held_digest: int = 0  # XOR of the held resources' digests: the version of `held`
    nonce: str | None = None  # of our latest response
    pending: Pending | None = None
    rejected: dict[str, str | None] = field(default_factory=dict)  # name -> NACKed version (None: a removal)
    nacks_in_a_row: int = 0
    retry_at: float | None = None  # when the rejected resources are offered again
    retrying: bool = False  # the next response re-offers rejected resources
    must_answer: bool = False  # answer the next push even if nothing changed
    # What the last evaluation saw: a push whose snapshot has the same mapping for this type, with
    # nothing else changed since, has nothing to do.
    seen: Mapping[str, PreparedResource] | None = None
    dirty: bool = True
    # SotW: the encoding of the last request's subscription (see stream.subscription_key).
    request_key: bytes = b""

    def covers(self, name: str) -> bool:
        return self.wildcard or name in self.names

    @property
    def version(self) -> str:
        return set_version(self.held_digest)

    def hold(self, resource: PreparedResource) -> None:
        old = self.held.get(resource.name)
        if old is not None:
            self.held_digest ^= old.digest
        self.held[resource.name] = resource
        self.held_digest ^= resource.digest

    def drop(self, name: str) -> None:
        old = self.held.pop(name, None)
        if old is not None:
            self.held_digest ^= old.digest


@dataclass(frozen=True, slots=True)
class Change:
    """What one type needs: the full desired set, and how it differs from what the proxy holds."""

    desired: Mapping[str, PreparedResource]
    changed: dict[str, PreparedResource]
    removed: tuple[str, ...]


def placeholder(name: str, version: str) -> PreparedResource:
    """A resource the proxy says it has (Delta initial_resource_versions) whose content we never sent."""
    return PreparedResource(name=name, packed=any_pb2.Any(), version=version, digest=resource_digest(name, version))


class SubscriptionStream(Generic[Request, Response]):
    """The shared state machine of one xDS stream (ADS when `ordered`, a single type otherwise)."""

    mode = "sotw"

    def __init__(
        self,
        record: ProxyRecord,
        nonce_prefix: str = "",
        observer: StreamObserver | None = None,
        ordered: bool = True,
        backoff: NackBackoff | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.record = record
        # On ADS we order types; a single-type stream (CDS, EDS, LDS or RDS service) cannot wait for others.
        self._ordered = ordered
        self._observer: StreamObserver = observer or NoObserver()
        self._backoff = backoff or NackBackoff()
        self._clock = clock
        self._nonce_prefix = nonce_prefix
        self._nonces = 0
        self._subs: dict[TypeUrl, Subscription] = {type_url: Subscription() for type_url in ORDER}
        self._order = [(type_url, self._subs[type_url], type_url in GATED_TYPES) for type_url in ORDER]
        self._route_references: frozenset[str] | None = None  # clusters held or ACKed routes use (memo)
        self._needed_endpoints: frozenset[str] | None = None  # endpoints the ACKed clusters need (memo)
        # Clusters kept for make-before-break, for the snapshot's cluster mapping it was computed with (memo).
        self._retained: tuple[Mapping[str, PreparedResource], frozenset[str]] | None = None
        self._log = log.bind(node_id=record.node_id, stream=record.stream_id, mode=self.mode)

    def subscription(self, type_url: TypeUrl) -> Subscription:
        return self._subs[type_url]

    def next_retry_at(self) -> float | None:
        """When a rejected resource is next due to be offered again (the server wakes the stream then)."""
        due = [sub.retry_at for sub in self._subs.values() if sub.retry_at is not None and sub.pending is None]
        return min(due) if due else None

    # -- what differs between protocols (overridden) -------------------------------------------

    def on_request(self, request: Request, snapshot: Snapshot | None) -> list[Response]:
        """A request from the proxy: ACK/NACK and subscription bookkeeping, then what it needs now."""
        raise NotImplementedError

    def _removes(self, type_url: TypeUrl) -> bool:
        """Whether a response of this type can take resources away from the proxy."""
        raise NotImplementedError

    def _response(self, type_url: TypeUrl, nonce: str, version: str, change: Change) -> Response:
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------------

    def _type_of(self, type_url: str) -> TypeUrl | None:
        found = _BY_URL.get(type_url)
        if found is None or found not in self._subs:
            self._log.info("xds.unsupported_type", type_url=type_url)
            return None
        return found

    def _answered(self, type_url: TypeUrl, nonce: str, error: str | None) -> bool:
        """The proxy answered the response `nonce` (an ACK, or a NACK with `error`); False if stale."""
        sub = self._subs[type_url]
        if nonce != sub.nonce:
            self._log.debug("xds.stale_nonce", type=SHORT[type_url], nonce=nonce, latest=sub.nonce)
            return False
        pending, sub.pending = sub.pending, None
        if pending is None:
            return True  # a further request quoting an answered nonce: a subscription change, no answer
        if error is not None:
            self._nacked(type_url, sub, pending, error)
        else:
            self._acked(type_url, sub, pending)
        self._touch_dependents(type_url)  # `held` is unchanged: nothing to diff again for this type
        return True

    def _acked(self, type_url: TypeUrl, sub: Subscription, pending: Pending) -> None:
        for name, resource in pending.changed.items():
            sub.acked[name] = resource
            sub.rejected.pop(name, None)
        for name in pending.removed:
            sub.acked.pop(name, None)
            sub.rejected.pop(name, None)
        if not sub.rejected:
            sub.nacks_in_a_row, sub.retry_at = 0, None
        status = self.record.status(type_url)
        status.acked_version, status.acked_at = pending.version, self._clock()
        status.retry_at = sub.retry_at
        self._log.debug("xds.ack", type=SHORT[type_url], version=pending.version)
        self._observer.acked(self.record, type_url, pending.version, pending.sent_at)

    def _nacked(self, type_url: TypeUrl, sub: Subscription, pending: Pending, error: str) -> None:
        # The proxy keeps what it last accepted; `held` stays as sent so that nothing is offered
        # again before the backoff, unless its content changes.
        for name, resource in pending.changed.items():
            sub.rejected[name] = resource.version
        for name in pending.removed:
            sub.rejected[name] = None
        sub.nacks_in_a_row += 1
        sub.retry_at = self._clock() + self._backoff.delay(sub.nacks_in_a_row)
        status = self.record.status(type_url)
        status.record_nack(pending.version, error)
        status.retry_at = sub.retry_at
        self._log.warning(
            "xds.nack",
            type=SHORT[type_url],
            rejected_version=pending.version,
            rejected=sorted(sub.rejected),
            error=error,
            retry_in_seconds=round(sub.retry_at - self._clock(), 1),
        )
        self._observer.nacked(self.record, type_url, pending.version, error)

    def _subscribe(self, type_url: TypeUrl, wildcard: bool, names: frozenset[str]) -> None:
        """The proxy's subscription for one type is now `wildcard` and/or `names`."""
        sub = self._subs[type_url]
        first = not sub.requested
        sub.requested = True
        if first:
            sub.must_answer = True
        if not first and wildcard == sub.wildcard and (names is sub.names or names == sub.names):
            return
        added = set() if sub.wildcard or wildcard else names - sub.names
        sub.wildcard, sub.names, sub.sorted_names = wildcard, names, tuple(sorted(names))
        for name in [n for n in sub.held if not sub.covers(n)]:
            sub.drop(name)  # unsubscribed: the proxy forgets it and wants no removal
            sub.acked.pop(name, None)
            sub.rejected.pop(name, None)
        # Asking again for a rejected resource is asking for it to be offered again.
        for name in added & sub.rejected.keys():
            self._revert(sub, name)
        self.record.status(type_url).resource_names = ("*",) if wildcard else tuple(sorted(names))
        self._touch(type_url)

    def _revert(self, sub: Subscription, name: str) -> None:
        """Take the proxy to hold its last ACKed copy of `name`, so that the next diff offers ours again."""
        version = sub.rejected.pop(name, None)
        held = sub.held.get(name)
        if held is not None and held.version != version:
            return  # superseded since the NACK: the newer content is on its way already
        acked = sub.acked.get(name)
        if acked is not None:
            sub.hold(acked)
        else:
            sub.drop(name)

    def _touch(self, type_url: TypeUrl) -> None:
        """What the proxy asked for or holds of `type_url` changed: re-evaluate it at the next push."""
        self._subs[type_url].dirty = True
        self._touch_dependents(type_url)

    def _touch_dependents(self, type_url: TypeUrl) -> None:
        """What the proxy holds or accepted of `type_url` changed: re-evaluate the types whose desired
        set depends on it (the resources kept for make-before-break). A push evaluates only types
        that are dirty or whose snapshot mapping changed; the ordering gate is checked every push."""
        if type_url is TypeUrl.ROUTE:  # routes hold on to clusters
            before = self._retained
            self._route_references = self._retained = None
            if before is not None and self._retained_for(before[0]) == before[1]:
                return  # the routes changed, the clusters they keep did not: no cluster to diff again
            self._subs[TypeUrl.CLUSTER].dirty = self._subs[TypeUrl.ENDPOINT].dirty = True
        elif type_url is TypeUrl.CLUSTER:  # kept clusters hold on to their endpoints; the gate needs theirs
            self._needed_endpoints = self._retained = None
            self._subs[TypeUrl.ENDPOINT].dirty = True

    # -- pushes --------------------------------------------------------------------------------

    def push(self, snapshot: Snapshot | None) -> list[Response]:
        """Every response the proxy needs to reach `snapshot`, in ORDER."""
        if snapshot is None:
            return []
        now = self._clock()
        responses = []
        retained: frozenset[str] | None = None
        by_type = snapshot.resources
        for type_url, sub, gated in self._order:
            if not sub.requested:
                continue
            if sub.retry_at is not None and sub.pending is None and now >= sub.retry_at:
                self._retry(type_url, sub)
            available = by_type.get(type_url, EMPTY)
            if available is sub.seen and not sub.dirty and not sub.must_answer:
                continue  # nothing changed for this type since we last looked
            if type_url is TypeUrl.CLUSTER:
                self._subs[TypeUrl.ENDPOINT].dirty = True  # endpoints kept for removed clusters depend on it
            if gated and self._ordered and not self._clusters_settled():
                continue
            step = snapshot.patched.get(type_url)
            if step is not None and step[0] is sub.seen and not sub.dirty and not sub.must_answer:
                # Nothing changed on our side since we last looked, and the snapshot says which of
                # these resources are new: look at those only (a change costs what it changes).
                change = self._stepped(sub, available, step[1])
            else:
                if retained is None and (type_url is TypeUrl.CLUSTER or type_url is TypeUrl.ENDPOINT):
                    retained = self._retained_clusters(snapshot)
                change = self._change(type_url, sub, available, retained or _NONE)
            sub.seen, sub.dirty = available, False
            if change.changed or change.removed or sub.must_answer:
                if not sub.wildcard and not sub.names and not change.removed:
                    sub.must_answer = False  # subscribed to nothing: nothing to answer
                    continue
                responses.append(self._send(type_url, sub, change, now))
        return responses

    def _retry(self, type_url: TypeUrl, sub: Subscription) -> None:
        """The backoff after a NACK is over: offer the rejected resources again."""
        for name in list(sub.rejected):
            self._revert(sub, name)
        sub.retry_at, sub.retrying = None, True
        self.record.status(type_url).retry_at = None
        self._touch(type_url)

    def _change(
        self, type_url: TypeUrl, sub: Subscription, available: Mapping[str, PreparedResource], retained: frozenset[str]
    ) -> Change:
        desired: Mapping[str, PreparedResource]
        if sub.wildcard:
            desired = available
        else:
            desired = {name: available[name] for name in sub.sorted_names if name in available}
        if retained:
            kept = self._kept(type_url, sub, retained, desired)
            if kept:
                desired = {**desired, **kept}
        changed: dict[str, PreparedResource] = {}
        held = sub.held
        for name, resource in desired.items():
            have = held.get(name)
            if have is None or have.version != resource.version:
                changed[name] = resource
            elif have is not resource:
                # Same content, newer object (or a Delta placeholder): keep the one the snapshot holds.
                held[name] = resource
                if sub.acked.get(name) is have:
                    sub.acked[name] = resource
        removed = tuple(sorted(name for name in held if name not in desired)) if self._removes(type_url) else ()
        return Change(desired=desired, changed=changed, removed=removed)

    @staticmethod
    def _stepped(sub: Subscription, available: Mapping[str, PreparedResource], names: Iterable[str]) -> Change:
        """The change when only the resources `names` (ones the previous mapping had) are new: none
        comes or goes, so nothing is removed and what is kept for make-before-break stays as it is."""
        changed: dict[str, PreparedResource] = {}
        held = sub.held
        for name in names:
            resource = available.get(name)
            if resource is None or not sub.covers(name):
                continue
            have = held.get(name)
            if have is None or have.version != resource.version:
                changed[name] = resource
        return Change(desired=available, changed=changed, removed=())

    def _kept(
        self, type_url: TypeUrl, sub: Subscription, retained: frozenset[str], desired: Mapping[str, PreparedResource]
    ) -> dict[str, PreparedResource]:
        """Resources gone from the snapshot that the proxy keeps for make-before-break."""
        if type_url is TypeUrl.CLUSTER:
            names: Iterable[str] = retained
        elif type_url is TypeUrl.ENDPOINT:
            clusters = self._subs[TypeUrl.CLUSTER].held
            names = {ref for name in retained if name in clusters for ref in clusters[name].references}
        else:
            return {}
        return {name: sub.held[name] for name in names if name in sub.held and name not in desired and sub.covers(name)}

    def _send(self, type_url: TypeUrl, sub: Subscription, change: Change, now: float) -> Response:
        self._nonces += 1
        nonce = f"{self._nonce_prefix}{self._nonces}"
        for resource in change.changed.values():
            sub.hold(resource)
        for name in change.removed:
            sub.drop(name)
        if sub.rejected:  # what is offered anew is no longer rejected
            for name in (*change.changed, *change.removed):
                sub.rejected.pop(name, None)
        version = sub.version
        sub.pending = Pending(version=version, sent_at=now, changed=change.changed, removed=change.removed)
        sub.nonce, sub.must_answer = nonce, False
        status = self.record.status(type_url)
        status.sent_version, status.sent_at = version, now
        status.resources = sub.held  # the live map of what the proxy holds: no copy per push
        status.responses_sent += 1
        if sub.retrying:
            sub.retrying = False
            status.resends += 1
            self._log.info("xds.nack_resend", type=SHORT[type_url], version=version, resends=status.resends)
            self._observer.resent(self.record, type_url, version)
        # Debug, not info: at info every stream's every response was a JSON line (about 45 us per
        # stream per push, as much as a tenth of the push; 5,000 lines per change at 5,000 proxies).
        # The admin API (ListProxies: versions, responses_sent) and the metrics say the same.
        self._log.debug("xds.push", type=SHORT[type_url], version=version, nonce=nonce, changed=len(change.changed), removed=len(change.removed))
        self._observer.pushed(self.record, type_url, version, len(change.changed))
        self._touch_dependents(type_url)
        return self._response(type_url, nonce, version, change)

    # -- the rules of ordering -----------------------------------------------------------------

    def _retained_clusters(self, snapshot: Snapshot) -> frozenset[str]:
        """Clusters gone from the snapshot that routes the proxy may still use refer to.

        Until the proxy ACKs new routes it routes with the ones it last accepted (and keeps them
        after a NACK), so both the routes sent and the routes ACKed hold on to their clusters.
        """
        return self._retained_for(snapshot.of(TypeUrl.CLUSTER))

    def _retained_for(self, current: Mapping[str, PreparedResource]) -> frozenset[str]:
        """`_retained_clusters` against the cluster mapping `current` (memoised per mapping)."""
        if self._retained is not None and self._retained[0] is current:
            return self._retained[1]
        referenced = self._route_references
        if referenced is None:
            routes = self._subs[TypeUrl.ROUTE]
            # Set operations in C: at the edge these are thousands of names on every route change.
            referenced = self._route_references = frozenset().union(
                *[route.references for route in _chain(routes.held.values(), routes.acked.values())]
            )
        held_clusters = self._subs[TypeUrl.CLUSTER].held
        retained = frozenset(name for name in referenced.difference(current) if name in held_clusters)
        self._retained = (current, retained)
        return retained

    def _clusters_settled(self) -> bool:
        """The proxy has answered our last CDS response and asked for the endpoints of the clusters it
        accepted (after a NACK it will not ask for those it rejected: waiting for them would hold
        every later listener and route change back)."""
        cds = self._subs[TypeUrl.CLUSTER]
        if cds.nonce is None or cds.pending is not None:
            return False
        eds = self._subs[TypeUrl.ENDPOINT]
        needed = self._needed_endpoints
        if needed is None:
            needed = self._needed_endpoints = frozenset().union(*[cluster.references for cluster in cds.acked.values()])
        if not needed:
            return True
        return (eds.wildcard or needed <= eds.names) and eds.nonce is not None


def _chain(*groups: Iterable[PreparedResource]) -> Iterable[PreparedResource]:
    for group in groups:
        yield from group

