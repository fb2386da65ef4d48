"""Golden scenarios as data: `testdata/<scenario>/input.yaml` describes ECS clusters (task
definitions and tasks) and the proxy roles to translate for; `testdata/<scenario>/<role>/` holds
one file per xDS type, as Envoy Gateway's translator tests do.

Input format (every key below is the whole vocabulary; anything else is an error):

    roles:                  # role name -> node metadata, as `controlplane bootstrap` writes it
      edge: {role: edge, listen_address: 127.0.0.1, listen_port: 10000}
    settings:               # optional: `serve` settings the model reads
      default_host_rule: '{service}.example.com'
    clusters:
    - name: prod
      task_definitions:
      - {family: orders, revision: 7, ports: [50051], network_mode: awsvpc, labels: {xds.service: orders}}
      tasks:
      - {id: orders-1, task_definition: orders:7, address: 127.0.1.10, host_port: 32768, zone: eu-west-1a,
         last_status: RUNNING, desired_status: RUNNING, health: HEALTHY}
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml
from google.protobuf import json_format

from controlplane.discovery.state import ClusterState
from controlplane.model.build import build_mesh
from controlplane.model.host_rule import DefaultHostRule
from controlplane.model.mesh import Mesh
from controlplane.proxy.roles import ProxyRole, role_from_metadata
from controlplane.translate import Resources
from controlplane.translate.patch import check_service
from controlplane.xds.types import TypeUrl
from unit.builders import cluster_state, task, task_definition

TESTDATA = Path(__file__).parent / "testdata"
INPUT = "input.yaml"
OUTPUT_FILES = {
    TypeUrl.CLUSTER: "clusters.yaml",
    TypeUrl.ENDPOINT: "endpoints.yaml",
    TypeUrl.LISTENER: "listeners.yaml",
    TypeUrl.ROUTE: "routes.yaml",
}
TASK_DEFINITION_KEYS = {"family", "revision", "ports", "network_mode", "labels"}
SETTINGS_KEYS = {"default_host_rule"}
TASK_KEYS = {"id", "task_definition", "address", "host_port", "zone", "last_status", "desired_status", "health"}


class ScenarioError(ValueError):
    """A golden input file that does not follow the format above."""


@dataclass(frozen=True)
class Scenario:
    name: str
    roles: Mapping[str, ProxyRole]
    states: tuple[ClusterState, ...]
    host_rule: DefaultHostRule | None = None

    @property
    def directory(self) -> Path:
        return TESTDATA / self.name

    def mesh(self) -> Mesh:
        return build_mesh(list(self.states), host_rule=self.host_rule, resource_check=check_service)

    def output(self, role_name: str, type_url: TypeUrl) -> Path:
        return self.directory / role_name / OUTPUT_FILES[type_url]


def _only(keys: set[str], entry: Mapping[str, Any], where: str) -> None:
    unknown = set(entry) - keys
    if unknown:
        raise ScenarioError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(keys)}")


def _cluster(entry: Mapping[str, Any], where: str) -> ClusterState:
    _only({"name", "task_definitions", "tasks"}, entry, where)
    name = entry["name"]
    definitions = {}
    for td_entry in entry.get("task_definitions") or []:
        _only(TASK_DEFINITION_KEYS, td_entry, f"{where}: task definition {td_entry.get('family')}")
        td = task_definition(
            td_entry["family"],
            td_entry.get("revision", 1),
            {str(k): str(v) for k, v in (td_entry.get("labels") or {}).items()},
            ports=tuple(td_entry.get("ports", (50051,))),
            network_mode=td_entry.get("network_mode", "awsvpc"),
        )
        definitions[f"{td.family}:{td.revision}"] = td
    tasks = []
    for task_entry in entry.get("tasks") or []:
        _only(TASK_KEYS, task_entry, f"{where}: task {task_entry.get('id')}")
        family_revision = task_entry["task_definition"]
        if family_revision not in definitions:
            raise ScenarioError(f"{where}: task {task_entry['id']}: no task definition {family_revision} in cluster {name}")
        tasks.append(
            task(
                definitions[family_revision],
                task_entry["id"],
                task_entry["address"],
                port=task_entry.get("host_port"),
                last_status=task_entry.get("last_status", "RUNNING"),
                desired_status=task_entry.get("desired_status", "RUNNING"),
                container_health=task_entry.get("health", "HEALTHY"),
                zone=task_entry.get("zone", "eu-west-1a"),
                cluster=name,
            )
        )
    return cluster_state(tasks, list(definitions.values()), cluster=name)


def load(name: str) -> Scenario:
    where = f"{name}/{INPUT}"
    document = yaml.safe_load((TESTDATA / name / INPUT).read_text())
    _only({"roles", "clusters", "settings"}, document, where)
    settings = document.get("settings") or {}
    _only(SETTINGS_KEYS, settings, f"{where}: settings")
    roles = {role_name: role_from_metadata(role_name, metadata) for role_name, metadata in document["roles"].items()}
    states = tuple(_cluster(entry, f"{where}: cluster {entry.get('name')}") for entry in document["clusters"])
    rule = settings.get("default_host_rule")
    return Scenario(name=name, roles=roles, states=states, host_rule=DefaultHostRule.parse(rule) if rule else None)


def names() -> list[str]:
    return sorted(path.parent.name for path in TESTDATA.glob(f"*/{INPUT}"))


def as_yaml(resources: Resources, type_url: TypeUrl) -> str:
    """One xDS type's resources by name, as the golden file holds them."""
    document = {
        name: json_format.MessageToDict(message, preserving_proto_field_name=True)
        for name, message in sorted(resources.of(type_url).items())
    }
    # MessageToDict gives OrderedDicts for Any fields; plain JSON types keep safe_dump happy.
    return yaml.safe_dump(json.loads(json.dumps(document)), sort_keys=True, default_flow_style=False)

