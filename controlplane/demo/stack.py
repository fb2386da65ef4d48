"""The whole path on one machine: local ECS -> control plane -> edge Envoy, all on loopback.

Used by `controlplane demo` and by the integration tests. Every process it starts is stopped by
close(), also when a step fails or the user presses Ctrl-C.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import boto3
import grpc

from controlplane.demo.envoy import EnvoyProcess
from controlplane.demo.processes import ChildProcess, free_port, port_open
from controlplane.proto.admin.v1 import admin_pb2 as api
from controlplane.proto.admin.v1 import admin_pb2_grpc

REGION = "us-east-1"
ROUTEGUIDE_PORT = 50051


def routeguide_task_definition(
    family: str = "routeguide",
    *,
    service: str = "routeguide",
    network_mode: str = "awsvpc",
    labels: Mapping[str, str] | None = None,
    environment: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """RegisterTaskDefinition arguments for a route-guide task that opts in with our labels."""
    docker_labels = {
        "xds.service": service,
        "xds.port": str(ROUTEGUIDE_PORT),
        "xds.protocol": "grpc",
        "xds.route.prefix": "/routeguide.RouteGuide/",
    }
    docker_labels.update(labels or {})
    mapping: dict[str, Any] = {"containerPort": ROUTEGUIDE_PORT, "protocol": "tcp"}
    if network_mode == "bridge":
        mapping["hostPort"] = 0
    return {
        "family": family,
        "networkMode": network_mode,
        "requiresCompatibilities": ["FARGATE" if network_mode == "awsvpc" else "EC2"],
        "cpu": "256",
        "memory": "512",
        "containerDefinitions": [
            {
                "name": "app",
                "image": "local/routeguide",
                "essential": True,
                "command": [sys.executable, "-m", "controlplane.routeguide", "--port", str(ROUTEGUIDE_PORT)],
                "portMappings": [mapping],
                "environment": [{"name": k, "value": v} for k, v in sorted((environment or {}).items())],
                "dockerLabels": {k: v for k, v in docker_labels.items() if v is not None},
                "stopTimeout": 5,
            }
        ],
    }


def acked_cds_version(admin: admin_pb2_grpc.AdminStub, node_id: str) -> str | None:
    """The CDS version `node_id` ACKed on its stream to this control plane, when it equals the one
    the control plane sent it last (else None: not connected, nothing sent yet, or an ACK pending)."""
    try:
        proxies = admin.ListProxies(api.ListProxiesRequest(), timeout=1.0).proxies
    except grpc.RpcError:
        return None  # the admin API is not up yet
    for proxy in proxies:
        if proxy.node_id == node_id:
            for status in proxy.types:
                if status.type == "CDS" and status.version_acked and status.version_acked == status.version_sent:
                    return str(status.version_acked)
    return None


def task_address(task: Mapping[str, Any]) -> str | None:
    """`host:port` of a route-guide task, as the route guide reports it in served_by."""
    for attachment in task.get("attachments", ()):
        for detail in attachment.get("details", ()):
            if detail.get("name") == "privateIPv4Address":
                return f"{detail['value']}:{ROUTEGUIDE_PORT}"
    return None


class DemoStack:
    """Local ECS + control plane + one edge Envoy, as child processes in a temporary directory."""

    def __init__(
        self,
        cluster: str = "demo",
        *,
        poll_interval: float | None = None,
        deactivating_seconds: float | None = None,
        healthy_after_running_seconds: float | None = 2.0,
        work_dir: Path | None = None,
        events_queue: str | None = None,
        events_topic: str | None = None,
        resync_interval: float | None = None,
        local_ecs_args: Iterable[str] = (),
        address_octets: tuple[int, int] | None = None,
    ) -> None:
        self.cluster = cluster
        # Task and instance addresses are 127.<task octet>.x.y and 127.<instance octet>.x.1. Two local
        # ECSs on one machine must not share them, so by default each stack draws its own.
        task_octet, instance_octet = address_octets or (random.randint(100, 174), random.randint(175, 249))
        # Event mode: the local ECS routes task state changes to this SQS queue and the control
        # plane long-polls it.
        self.events_queue = events_queue
        self.events_queue_url = ""
        # Replicas (demo/replicas.py): EventBridge -> this SNS topic -> one SQS queue per replica.
        self.events_topic = events_topic
        self.events_topic_arn = ""
        self.resync_interval = resync_interval
        self.local_ecs_args = list(local_ecs_args)
        if "--task-address-octet" not in self.local_ecs_args:
            self.local_ecs_args += ["--task-address-octet", str(task_octet), "--instance-address-octet", str(instance_octet)]
        self.poll_interval = poll_interval
        # Local ECS knobs, AWS's timings scaled down: the deregistration delay (only for services that
        # declare a load balancer; AWS 300 s) and how long a new task without health checks runs
        # before a deployment counts it healthy and stops an old one (AWS 40 s).
        self.deactivating_seconds = deactivating_seconds
        self.healthy_after_running_seconds = healthy_after_running_seconds
        self._tmp = None if work_dir else tempfile.TemporaryDirectory(prefix="controlplane-demo-")
        self.work_dir = work_dir or Path(self._tmp.name)  # type: ignore[union-attr]
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.local_ecs: ChildProcess | None = None
        self.control_plane: ChildProcess | None = None
        self.envoys: list[EnvoyProcess] = []
        self.ecs_url = ""
        self.xds_port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self.dashboard_port = 0
        self.ecs: Any = None

    # -- lifecycle -------------------------------------------------------------------------

    def start_local_ecs(self) -> None:
        self.local_ecs = ChildProcess(
            "local-ecs",
            [
                sys.executable, "-m", "controlplane", "local-ecs", "--port", "0",
                *(["--deactivating-seconds", str(self.deactivating_seconds)] if self.deactivating_seconds is not None else []),
                *(["--healthy-after-running-seconds", str(self.healthy_after_running_seconds)] if self.healthy_after_running_seconds is not None else []),
                "--log-dir", str(self.work_dir / "tasks"),
                *(["--events-queue", self.events_queue] if self.events_queue else []),
                *(["--events-topic", self.events_topic] if self.events_topic else []),
                *self.local_ecs_args,
            ],
            self.work_dir,
        ).start()
        ready = self.local_ecs.wait_for_stdout_json("local_ecs.ready", timeout=20)
        self.ecs_url = str(ready["url"])
        if self.events_queue:
            self.events_queue_url = str(ready["queues"][self.events_queue])
        if self.events_topic:
            self.events_topic_arn = str(ready["topics"][self.events_topic])
        self.ecs = boto3.client(
            "ecs", endpoint_url=self.ecs_url, region_name=REGION, aws_access_key_id="local", aws_secret_access_key="local"
        )
        self.ecs.create_cluster(clusterName=self.cluster)

    def aws_env(self) -> dict[str, str]:
        """Environment that points plain boto3 (in the control plane) at the local ECS."""
        import os

        env = dict(os.environ)
        env.update(
            AWS_ENDPOINT_URL_ECS=self.ecs_url,
            AWS_ENDPOINT_URL_EC2=self.ecs_url,
            AWS_ENDPOINT_URL_SQS=self.ecs_url,
            AWS_ENDPOINT_URL_SNS=self.ecs_url,
            AWS_ENDPOINT_URL_SSM=self.ecs_url,
            AWS_ENDPOINT_URL_SECRETS_MANAGER=self.ecs_url,
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            AWS_DEFAULT_REGION=REGION,
            AWS_EC2_METADATA_DISABLED="true",
        )
        return env

    def start_control_plane(self, *extra: str) -> None:
        self.xds_port = free_port()
        self.admin_port = free_port()
        self.metrics_port = free_port()
        self.dashboard_port = free_port()
        self.control_plane = ChildProcess(
            "controlplane",
            [
                sys.executable, "-m", "controlplane", "serve", "--cluster", self.cluster,
                "--xds-address", "127.0.0.1", "--xds-port", str(self.xds_port),
                "--admin-address", "127.0.0.1", "--admin-port", str(self.admin_port),
                "--metrics-address", "127.0.0.1", "--metrics-port", str(self.metrics_port),
                "--dashboard-address", "127.0.0.1", "--dashboard-port", str(self.dashboard_port),
                *(["--poll-interval", str(self.poll_interval)] if self.poll_interval is not None else []),
                "--log-format", "json",
                *(["--events-queue-url", self.events_queue_url] if self.events_queue_url else []),
                *(["--resync-interval", str(self.resync_interval)] if self.resync_interval else []),
                *([] if any(arg.startswith("--edge-certificate") for arg in extra) else ["--edge-plaintext"]),
                *extra,
            ],
            self.work_dir,
            env=self.aws_env(),
        ).start()
        self.control_plane.wait_until(lambda: "controlplane.ready" in self.control_plane_log_text(), 30, "first view of ECS")

    def restart_control_plane(self, envoy: EnvoyProcess, outage_seconds: float) -> float:
        """Stop the control plane, wait until `envoy` sees it gone, keep it down `outage_seconds`
        (Envoy's reconnect backoff grows meanwhile, as in a real outage) and start it again with the
        same ports; returns the monotonic time its xDS port accepted TCP connections again."""
        plane = self.control_plane
        assert plane is not None
        plane.stop()
        envoy.process.wait_until(lambda: envoy.counter("control_plane.connected_state") == 0, 10, "Envoy to notice the control plane is gone")
        time.sleep(outage_seconds)
        plane.start()
        plane.wait_until(lambda: port_open("127.0.0.1", self.xds_port), 30, "xDS port open", interval=0.02)
        return time.monotonic()

    def start_envoy(self, node_id: str = "edge-1", listen_port: int | None = None) -> EnvoyProcess:
        envoy = EnvoyProcess(node_id, self.xds_port, self.work_dir, listen_port=listen_port)
        self.envoys.append(envoy)
        envoy.start()
        return envoy

    def start_sidecar(self, node_id: str, service: str, **options: Any) -> EnvoyProcess:
        """An Envoy sidecar of `service`; its outbound listener is on 127.0.0.1 at `envoy.listen_port`."""
        from controlplane.proxy.bootstrap import XdsAddress, sidecar_bootstrap

        outbound_port = free_port()
        config = sidecar_bootstrap(
            node_id=node_id, xds=[XdsAddress("127.0.0.1", self.xds_port)], service=service, outbound_port=outbound_port, **options
        )
        envoy = EnvoyProcess(node_id, self.xds_port, self.work_dir, listen_port=outbound_port, config=config)
        self.envoys.append(envoy)
        envoy.start()
        return envoy

    def grpc_client_bootstrap(self, node_id: str, service: str) -> Path:
        """A GRPC_XDS_BOOTSTRAP file for a proxyless gRPC client of `service`."""
        from controlplane.proxy.bootstrap import XdsAddress, grpc_client_bootstrap

        path = self.work_dir / f"grpc-xds-{node_id}.json"
        path.write_text(json.dumps(grpc_client_bootstrap(node_id=node_id, xds=[XdsAddress("127.0.0.1", self.xds_port)], service=service)))
        return path

    def close(self) -> None:
        for envoy in self.envoys:
            envoy.stop()
        if self.control_plane:
            self.control_plane.stop()
        if self.local_ecs:
            self.local_ecs.stop(timeout=20)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> DemoStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- ECS helpers -----------------------------------------------------------------------

    def control_plane_log(self) -> list[dict[str, Any]]:
        events = []
        for line in self.control_plane_log_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def control_plane_log_text(self) -> str:
        assert self.control_plane is not None
        try:
            return self.control_plane.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def register(self, **kwargs: Any) -> str:
        response = self.ecs.register_task_definition(**routeguide_task_definition(**kwargs))
        return str(response["taskDefinition"]["taskDefinitionArn"])

    def create_service(self, name: str, task_definition: str, count: int) -> None:
        self.ecs.create_service(
            cluster=self.cluster,
            serviceName=name,
            taskDefinition=task_definition,
            desiredCount=count,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": ["subnet-local"], "assignPublicIp": "DISABLED"}},
        )

    def tasks(self, service: str | None = None, desired_status: str = "RUNNING") -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"cluster": self.cluster, "desiredStatus": desired_status}
        if service:
            kwargs["serviceName"] = service
        arns = self.ecs.list_tasks(**kwargs)["taskArns"]
        if not arns:
            return []
        return list(self.ecs.describe_tasks(cluster=self.cluster, tasks=arns)["tasks"])

    def running_tasks(self, service: str | None = None) -> list[dict[str, Any]]:
        return [task for task in self.tasks(service) if task["lastStatus"] == "RUNNING"]

    def wait_for_running(self, service: str, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            running = self.running_tasks(service)
            if len(running) == count and all(task["desiredStatus"] == "RUNNING" for task in running):
                return running
            if time.monotonic() > deadline:
                states = [(t["taskArn"].rsplit("/", 1)[-1], t["lastStatus"], t.get("stoppedReason")) for t in self.tasks(service, "RUNNING") + self.tasks(service, "STOPPED")]
                raise TimeoutError(f"service {service}: expected {count} RUNNING tasks after {timeout:.0f}s, have {states}")
            time.sleep(0.1)

    def wait_for_stopped(self, task_arn: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            task = self.ecs.describe_tasks(cluster=self.cluster, tasks=[task_arn])["tasks"][0]
            if task["lastStatus"] == "STOPPED":
                return dict(task)
            if time.monotonic() > deadline:
                raise TimeoutError(f"task {task_arn} still {task['lastStatus']} after {timeout:.0f}s")
            time.sleep(0.1)

    def local_ecs_hook(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Call the local ECS test hooks (`/_local/faults`, `/_local/throttle`, `/_local/events`)."""
        import urllib.request

        request = urllib.request.Request(
            self.ecs_url + path, data=json.dumps(body or {}).encode() if method == "POST" else None, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
            return json.loads(response.read())

    def inject_faults(self, **fault: Any) -> int:
        """Make the local ECS fail/delay calls: operation, error, rate, latency, duration, service."""
        return int(self.local_ecs_hook("POST", "/_local/faults", fault)["id"])

    def clear_faults(self) -> None:
        self.local_ecs_hook("DELETE", "/_local/faults")

    @property
    def admin_target(self) -> str:
        return f"127.0.0.1:{self.admin_port}"

    @staticmethod
    def addresses(tasks: Iterable[Mapping[str, Any]]) -> set[str]:
        return {address for address in (task_address(task) for task in tasks) if address}
