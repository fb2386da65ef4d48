"""The escape hatch: a JSON merge patch (RFC 7386) applied to a resource we built, through protobuf's
own JSON mapping (json_format: MessageToDict, then ParseDict), for what no label covers
(`xds.patch.cluster`, `xds.patch.route`, `serve --edge-listener-patch`; docs/labels.md).

Field names are those of Envoy's docs and config_dump (`connect_timeout`; protobuf's lowerCamelCase
JSON names are read too). Lists are replaced whole, `null` removes a field (RFC 7386). A patch that
names an unknown field, gives a value of the wrong type, renames the resource or breaks one of the
rules Envoy checks (proto_rules.py) is refused with what is wrong: `check_service` gives the model
that problem, which refuses the one service; translation itself never fails on a patch.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from controlplane.model.mesh import ResourcePatches, Service
from controlplane.translate.memo import TranslationMemo
from controlplane.translate.proto_rules import violations
from controlplane.xds.any_types import load_any_types

M = TypeVar("M", bound=Message)
_MAX_SHOWN = 3  # violations listed in one problem


class PatchError(ValueError):
    """A patch that cannot be applied, or whose result Envoy would reject."""


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge key by key, `null` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def patched(message: M, patch: str) -> M:
    """`message` with `patch` (a JSON object's text) applied; PatchError saying what is wrong."""
    load_any_types()  # the types inside typed_config Anys, for the JSON mapping
    try:
        changes = json.loads(patch)
    except ValueError as error:
        raise PatchError(f"not JSON: {error}") from None
    if not isinstance(changes, dict):
        raise PatchError("a merge patch is a JSON object")
    document = json_format.MessageToDict(message, preserving_proto_field_name=True)
    result = type(message)()
    try:
        json_format.ParseDict(merge_patch(document, changes), result)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as error:
        # ParseError lists every field of the message after the one it names: keep the first sentence.
        raise PatchError(str(error).split(" Available Fields", 1)[0].strip()) from None
    name = message.DESCRIPTOR.fields_by_name.get("name")
    if name is not None and getattr(result, "name") != getattr(message, "name"):
        raise PatchError(f"it renames the {message.DESCRIPTOR.name} {getattr(message, 'name')!r}: the name is the control plane's")
    broken = violations(result)
    if broken:
        more = f" (and {len(broken) - _MAX_SHOWN} more)" if len(broken) > _MAX_SHOWN else ""
        raise PatchError("Envoy would reject the result: " + "; ".join(broken[:_MAX_SHOWN]) + more)
    return result


def patched_or_kept(message: M, patch: str | None) -> M:
    """`message` patched, or as it is when there is no patch or it fails (the model has refused a
    service whose patch fails, see `check_service`; a translation never raises on a patch)."""
    if patch is None:
        return message
    try:
        return patched(message, patch)
    except Exception:  # noqa: BLE001 - PatchError, or a bug of ours: never fail a translation on a patch
        return message


def check_listener_patch(text: str) -> str:
    """The edge listener patch of `serve --edge-listener-patch` as canonical JSON, checked against the
    edge listener of an empty mesh in both its shapes, plaintext and TLS (certificates arrive after
    start-up and may come and go, so the patch must fit both); ValueError saying what is wrong."""
    from controlplane.model.json_grammar import canonical, json_object
    from controlplane.model.mesh import Mesh
    from controlplane.proxy.roles import EdgeRole
    from controlplane.secrets.certificate import Certificate, CertificateSet
    from controlplane.translate.edge_options import EdgeOptions
    from controlplane.translate.listener import edge_listener

    patch = canonical(json_object(text))
    # The listener names certificates by their SDS secret, never by content: a placeholder will do.
    placeholder = Certificate(name="check", chain_pem="", key_pem="", hosts=("example.com",), not_after=0.0, source="check")
    shapes = {"plaintext": EdgeOptions(), "TLS": EdgeOptions(certificates=CertificateSet(certificates=(placeholder,)))}
    for shape, options in shapes.items():
        try:
            patched(edge_listener(EdgeRole("127.0.0.1", 10000), "edge", Mesh(services=()), options), patch)
        except PatchError as error:
            raise ValueError(f"on the {shape} edge listener: {error}") from None
    return patch


def check_service(service: Service) -> tuple[str, str] | None:
    """The model's resource check (model/build.py): the service's cluster and route patches applied
    to what translate builds for it, or (label, what is wrong)."""
    from controlplane.translate.cluster import service_cluster
    from controlplane.translate.route import service_route

    patches = service.policy.patches
    for label, patch, build in (
        ("patch.cluster", patches.cluster, lambda: service_cluster(service, patch=False)),
        ("patch.route", patches.route, lambda: service_route(service, patch=False)),
    ):
        if patch is None:
            continue
        try:
            patched(build(), patch)
        except PatchError as error:
            return label, str(error)
        except Exception as error:  # noqa: BLE001 - a bug of ours must refuse this one service, not stop the build
            return label, f"the patch could not be checked ({type(error).__name__}: {error})"
    return None


class MemoisedCheck:
    """check_service, run once per service settings (the process's TranslationMemo keeps the result
    while the service is in the mesh): a rebuild checks only the patched services whose settings
    changed, not every patched service again (about 3 ms each).

    The memo keeps what a live role holds; these results belong to no role, so the checks hold
    them: `hold()` after each build keeps the results the build used and lets the others go."""

    KIND = "patch-check"

    def __init__(self, memo: TranslationMemo) -> None:
        self._memo = memo
        self._unpatched = ResourcePatches()
        self._used: set[tuple[str, str]] = set()
        self._held: frozenset[tuple[str, str]] = frozenset()

    def __call__(self, service: Service) -> tuple[str, str] | None:
        if service.policy.patches == self._unpatched:
            return None
        self._used.add((self.KIND, service.name))
        return self._memo.get_for(self.KIND, service.name, self._memo.settings_key(service), lambda: check_service(service))

    def hold(self) -> None:
        """A build is over: hold the results it used (every service it checked), release the rest. A
        build that checked nothing (an endpoint change assembles nothing) keeps what is held."""
        if not self._used:
            return
        used, self._used = frozenset(self._used), set()
        self._memo.retain(used - self._held)
        self._memo.release(self._held - used)
        self._held = used


def memoised_check(memo: TranslationMemo) -> MemoisedCheck:
    """The resource check the control plane gives the model (see MemoisedCheck)."""
    return MemoisedCheck(memo)
