"""PollingDiscovery: fail static on errors, nothing published before every cluster was read."""

from __future__ import annotations

import asyncio
from typing import Mapping

from controlplane.discovery.poller import PollingDiscovery
from controlplane.discovery.state import ClusterState

from .builders import cluster_state, task, task_definition


class FakeReader:
    """Returns the queued outcomes in order: a ClusterState, or an exception to raise."""

    def __init__(self, *outcomes: ClusterState | Exception) -> None:
        self.outcomes = list(outcomes)

    def read(self, cluster: str) -> tuple[ClusterState, Mapping[str, int]]:
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome, {"ListTasks": 2}


def _discovery(readers: dict[str, FakeReader]) -> tuple[PollingDiscovery, list[list[ClusterState]]]:
    published: list[list[ClusterState]] = []
    discovery = PollingDiscovery(list(readers), ecs=object(), ec2=object(), publish=published.append)
    discovery._readers = readers  # type: ignore[assignment]  # the ECS I/O is what we replace
    return discovery, published


def _view(cluster: str, *addresses: str) -> ClusterState:
    td = task_definition("orders", labels={"xds.service": "orders"})
    return cluster_state(
        [task(td, f"t{i}", address, cluster=cluster) for i, address in enumerate(addresses)], [td], cluster=cluster
    )


def test_a_failed_sync_keeps_the_last_view_and_reports_the_error() -> None:
    first = _view("prod", "127.0.0.1", "127.0.0.2")
    discovery, published = _discovery({"prod": FakeReader(first, RuntimeError("ECS said no"))})

    asyncio.run(discovery.sync_once())
    asyncio.run(discovery.sync_once())

    assert published == [[first]]
    status = discovery.status["prod"]
    assert status.last_error == "RuntimeError: ECS said no"
    assert status.consecutive_failures == 1
    assert status.last_success_at == first.synced_at
    assert discovery.first_view.is_set()


def test_recovery_clears_the_error_and_publishes_the_new_view() -> None:
    first, later = _view("prod", "127.0.0.1"), _view("prod", "127.0.0.1", "127.0.0.3")
    discovery, published = _discovery({"prod": FakeReader(first, RuntimeError("boom"), later)})

    for _ in range(3):
        asyncio.run(discovery.sync_once())

    assert published == [[first], [later]]
    assert discovery.status["prod"].last_error is None
    assert discovery.status["prod"].consecutive_failures == 0


def test_an_unchanged_view_is_not_published_again() -> None:
    discovery, published = _discovery({"prod": FakeReader(_view("prod", "127.0.0.1"), _view("prod", "127.0.0.1"))})

    asyncio.run(discovery.sync_once())
    asyncio.run(discovery.sync_once())

    assert len(published) == 1


def test_nothing_is_published_until_every_cluster_was_read_once() -> None:
    prod, staging = _view("prod", "127.0.0.1"), _view("staging", "127.0.1.1")
    discovery, published = _discovery(
        {"prod": FakeReader(prod, prod), "staging": FakeReader(RuntimeError("AccessDenied"), staging)}
    )

    asyncio.run(discovery.sync_once())
    assert published == []
    assert not discovery.first_view.is_set()
    assert discovery.status["staging"].last_error == "RuntimeError: AccessDenied"

    asyncio.run(discovery.sync_once())
    assert published == [[prod, staging]]
    assert discovery.first_view.is_set()
