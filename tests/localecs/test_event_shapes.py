"""Task state change events as ECS sends them (AWS's EventBridge examples): no healthStatus,
no event on a health change, ISO millisecond timestamps, attachment type ``eni``; and
DescribeTasks timestamps on the wire in ECS's E9 form."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session

from controlplane.localecs.eventbridge import event_time, iso
from controlplane.localecs.wire import aws_json, java_double

from .conftest import LocalEcsFactory
from .events_queue import EventReader, stopped
from .helpers import container, wait_for

ENVELOPE_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# Milliseconds with trailing zeros dropped: .984Z, .54Z, .7Z or none.
DETAIL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{0,2}[1-9])?Z$")
TASK_SHAPE = botocore.session.get_session().get_service_model("ecs").shape_for("Task")


def _health_keys(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [k for k in value if k == "healthStatus"] + [k for v in value.values() for k in _health_keys(v)]
    if isinstance(value, list):
        return [k for v in value for k in _health_keys(v)]
    return []


def test_timestamp_formats_match_aws_examples() -> None:
    # From AWS's example event: "startedAt": "2024-11-13T20:56:36.54Z", "time": "2024-11-13T21:23:11Z".
    assert iso(1731531396.540) == "2024-11-13T20:56:36.54Z"
    assert iso(1731532991.984) == "2024-11-13T21:23:11.984Z"
    assert iso(1731532991.0) == "2024-11-13T21:23:11Z"
    assert event_time(1731532991.984) == "2024-11-13T21:23:11Z"
    # DescribeTasks on the wire: Java doubles, milliseconds.
    assert java_double(1731532991.984) == "1.731532991984E9"
    assert java_double(1731532990.0) == "1.73153299E9"
    assert aws_json({"t": [1731532991.5], "n": 3, "s": "1.5"}) == b'{"t": [1.7315329915E9], "n": 3, "s": "1.5"}'


def test_events_carry_no_health_and_a_health_change_sends_none(local_ecs: LocalEcsFactory, tmp_path: Path) -> None:
    srv = local_ecs.server(event_queues=["events"])
    ecs, reader = local_ecs.client(srv), EventReader(local_ecs.client(srv, "sqs"), "events")
    ecs.create_cluster(clusterName="c")
    sick = tmp_path / "sick"
    check = {"command": ["CMD-SHELL", f"test ! -e {sick}"], "interval": 0.1, "retries": 2, "timeout": 2}
    ecs.register_task_definition(
        family="f", networkMode="awsvpc",
        containerDefinitions=[container(healthCheck=check), container(name="side", port=9090, essential=False, healthCheck=check)],
    )
    arn = ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"]

    def described() -> dict[str, Any]:
        return dict(ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0])

    reader.until(lambda events: any(e["detail"]["lastStatus"] == "RUNNING" for e in events))
    healthy = wait_for(lambda: (t := described())["healthStatus"] == "HEALTHY" and t, what="HEALTHY")
    sick.touch()
    # Each container's check fails on its own schedule: the essential one turns the task UNHEALTHY, the side car
    # follows within its own interval x retries.
    unhealthy = wait_for(
        lambda: (t := described())["healthStatus"] == "UNHEALTHY"
        and {c["healthStatus"] for c in t["containers"]} == {"UNHEALTHY"}
        and t,
        what="task and both containers UNHEALTHY",
    )
    # Health is visible through DescribeTasks only: the version did not move and no event came.
    running_version = reader.events[-1]["detail"]["version"]
    assert healthy["version"] == unhealthy["version"] == running_version
    assert reader.read(wait_seconds=1) == []
    ecs.stop_task(cluster="c", task=arn)
    events = reader.until(stopped(arn))
    assert [k for e in events for k in _health_keys(e)] == []


def test_event_envelope_and_detail_are_shaped_as_aws_sends_them(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server(processes=False, event_queues=["events"])
    ecs, reader = local_ecs.client(srv), EventReader(local_ecs.client(srv, "sqs"), "events")
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(
        family="f", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
        containerDefinitions=[{"name": "app", "image": "x", "portMappings": [{"containerPort": 80}], "dockerLabels": {"a": "b"}}],
    )
    arn = ecs.run_task(cluster="c", taskDefinition="f", launchType="FARGATE", tags=[{"key": "k", "value": "v"}])["tasks"][0]["taskArn"]
    reader.until(lambda events: any(e["detail"]["lastStatus"] == "RUNNING" for e in events))
    ecs.stop_task(cluster="c", task=arn)
    events = reader.until(stopped(arn))
    for event in events:
        assert set(event) == {"version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"}
        assert (event["version"], event["detail-type"], event["source"]) == ("0", "ECS Task State Change", "aws.ecs")
        assert event["resources"] == [arn] and ENVELOPE_TIME.match(event["time"])
        detail = event["detail"]
        # The detail is DescribeTasks' Task plus updatedAt, minus health and tags.
        assert set(detail) - {"updatedAt"} <= set(TASK_SHAPE.members)
        assert "tags" not in detail
        for key, value in detail.items():
            if key.endswith("At"):
                assert DETAIL_TIME.match(value), (key, value)
        assert event["time"] == detail["updatedAt"][:19] + "Z"
        assert [a["type"] for a in detail["attachments"]] == ["eni"]
    described = ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
    assert described["attachments"][0]["type"] == "ElasticNetworkInterface"
    assert events[-1]["detail"]["version"] == described["version"]


def test_describe_tasks_timestamps_are_e9_numbers_on_the_wire(local_ecs: LocalEcsFactory) -> None:
    srv = local_ecs.server(processes=False)
    ecs = local_ecs.client(srv)
    bodies: list[bytes] = []
    ecs.meta.events.register("after-call.ecs.DescribeTasks", lambda http_response, **_: bodies.append(http_response.content))
    ecs.create_cluster(clusterName="c")
    ecs.register_task_definition(family="f", containerDefinitions=[{"name": "app", "image": "x", "dockerLabels": {"local-ecs.address-only": "true"}}])
    arn = ecs.run_task(cluster="c", taskDefinition="f")["tasks"][0]["taskArn"]
    task = ecs.describe_tasks(cluster="c", tasks=[arn])["tasks"][0]
    assert re.search(rb'"createdAt": \d\.\d+E9[,}]', bodies[-1])
    raw = json.loads(bodies[-1])["tasks"][0]["createdAt"]
    assert abs(task["createdAt"].timestamp() - raw) < 0.001
