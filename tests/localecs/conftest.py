"""Fixtures: a local ECS server per test, boto3 clients that record raw responses for shape checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config

from controlplane.localecs import LocalEcsServer
from .shape_check import ec2_shape_errors, ecs_shape_errors



# AWS waits 40 s before a new task without health checks counts as healthy; tests wait this long.
HEALTHY_AFTER_RUNNING_SECONDS = 0.5


class Recorder:
    """Raw response bodies seen by the boto3 clients, checked against botocore shapes."""

    def __init__(self) -> None:
        self.responses: list[tuple[str, str, int, bytes]] = []

    def hook(self, service: str) -> Callable[..., None]:
        def after_call(http_response: Any, model: Any, **_: Any) -> None:
            self.responses.append((service, model.name, http_response.status_code, http_response.content))

        return after_call

    def errors(self) -> list[str]:
        problems: list[str] = []
        for service, operation, status, body in self.responses:
            if status != 200:
                continue
            if service == "ecs":
                problems += ecs_shape_errors(operation, json.loads(body))
            else:
                problems += ec2_shape_errors(operation, body)
        return problems

    def operations(self) -> set[str]:
        return {op for _, op, status, _ in self.responses if status == 200}


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(tmp_path: Any) -> Iterator[LocalEcsServer]:
    """A fast local ECS: short lifecycle delays, logs under tmp_path; always closed."""
    srv = LocalEcsServer(
        provisioning_seconds=0.05,
        pending_seconds=0.05,
        deactivating_seconds=0.3,
        default_stop_timeout_seconds=2.0,
        healthy_after_running_seconds=HEALTHY_AFTER_RUNNING_SECONDS,
        log_dir=str(tmp_path / "logs"),
    )
    try:
        srv.start()
        yield srv
    finally:
        srv.close()


def _client(service: str, srv: LocalEcsServer, recorder: Recorder, **config: Any) -> Any:
    client = boto3.client(
        service,
        endpoint_url=srv.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 1}, **config),
    )
    client.meta.events.register(f"after-call.{service}", recorder.hook(service))
    return client


@pytest.fixture
def ecs(server: LocalEcsServer, recorder: Recorder) -> Iterator[Any]:
    """boto3 ECS client; every successful response must match botocore's output shape."""
    yield _client("ecs", server, recorder)
    assert recorder.errors() == []


@pytest.fixture
def ecs_unvalidated(server: LocalEcsServer, recorder: Recorder) -> Any:
    """boto3 ECS client without client-side parameter validation (fractional health intervals)."""
    return _client("ecs", server, recorder, parameter_validation=False)


@pytest.fixture
def ec2(server: LocalEcsServer, recorder: Recorder) -> Any:
    return _client("ec2", server, recorder)


@pytest.fixture
def cluster(ecs: Any) -> str:
    ecs.create_cluster(clusterName="test")
    return "test"


class LocalEcsFactory:
    """Starts local ECS servers with given options and boto3 clients for them; closes them all."""

    def __init__(self, log_dir: str) -> None:
        self._log_dir = log_dir
        self._servers: list[LocalEcsServer] = []

    def server(self, **options: Any) -> LocalEcsServer:
        options = {
            "provisioning_seconds": 0.02, "pending_seconds": 0.02, "healthy_after_running_seconds": HEALTHY_AFTER_RUNNING_SECONDS,
            "log_dir": self._log_dir, **options,
        }
        srv = LocalEcsServer(**options)
        self._servers.append(srv)
        return srv.start()

    @staticmethod
    def client(srv: LocalEcsServer, service: str = "ecs") -> Any:
        return boto3.client(
            service, endpoint_url=srv.url, region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}, parameter_validation=False),
        )

    def close(self) -> None:
        for srv in self._servers:
            srv.close()


@pytest.fixture
def local_ecs(tmp_path: Any) -> Iterator[LocalEcsFactory]:
    """Local ECS servers built per test with the options that test needs."""
    factory = LocalEcsFactory(str(tmp_path / "logs"))
    try:
        yield factory
    finally:
        factory.close()
