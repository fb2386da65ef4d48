"""Where a new task goes: ECS's default for services, spread(attribute:ecs.availability-zone) then
spread(instanceId), over the tasks of its group (`service:NAME` or `family:NAME`). Deterministic:
ties go to the first zone and instance in order, so tests know which zone each task lands in."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from controlplane.localecs.model import ContainerInstance, Task


def spread_zone(zones: Sequence[str], peers: Iterable[Task]) -> str:
    """The zone with the fewest of the group's tasks; ties go to the first in `zones`."""
    counts = Counter(task.availability_zone for task in peers)
    return min(zones, key=lambda zone: (counts[zone], zones.index(zone)))


def place_on_instance(candidates: Sequence[ContainerInstance], peers: Sequence[Task]) -> ContainerInstance:
    """Spread over the candidates' zones, then over the instances of that zone."""
    zones = list(dict.fromkeys(instance.availability_zone for instance in candidates))
    zone = spread_zone(zones, peers)
    in_zone = [instance for instance in candidates if instance.availability_zone == zone]
    per_instance = Counter(task.container_instance.id for task in peers if task.container_instance is not None)
    return min(in_zone, key=lambda instance: (per_instance[instance.id], in_zone.index(instance)))
