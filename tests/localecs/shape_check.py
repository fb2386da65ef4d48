"""Checks raw responses against botocore's own output shapes (no unknown keys, right types)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import botocore.session
from botocore.model import Shape

_SESSION = botocore.session.get_session()


def _check_json(value: Any, shape: Shape, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected object, got {type(value).__name__}")
            return
        members = shape.members  # type: ignore[attr-defined]
        for key, item in value.items():
            if key not in members:
                errors.append(f"{path}.{key}: not in shape {shape.name}")
            else:
                _check_json(item, members[key], f"{path}.{key}", errors)
    elif kind == "list":
        if not isinstance(value, list):
            errors.append(f"{path}: expected list, got {type(value).__name__}")
            return
        for index, item in enumerate(value):
            _check_json(item, shape.member, f"{path}[{index}]", errors)  # type: ignore[attr-defined]
    elif kind == "map":
        if not isinstance(value, dict):
            errors.append(f"{path}: expected map")
            return
        for key, item in value.items():
            _check_json(item, shape.value, f"{path}[{key}]", errors)  # type: ignore[attr-defined]
    elif kind == "string":
        if not isinstance(value, str):
            errors.append(f"{path}: expected string, got {value!r}")
        elif shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} not in enum {shape.enum}")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: expected integer, got {value!r}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{path}: expected boolean, got {value!r}")
    elif kind in ("double", "float"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected number, got {value!r}")
    elif kind == "timestamp":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            errors.append(f"{path}: expected epoch seconds, got {value!r}")


def ecs_shape_errors(operation: str, body: dict[str, Any]) -> list[str]:
    """Every way ``body`` breaks the output shape of ECS ``operation``."""
    shape = _SESSION.get_service_model("ecs").operation_model(operation).output_shape
    errors: list[str] = []
    _check_json(body, shape, operation, errors)
    return errors


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _check_xml(element: ET.Element, shape: Shape, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        by_name = {m.serialization.get("name", name): m for name, m in shape.members.items()}  # type: ignore[attr-defined]
        for child in element:
            tag = _local(child.tag)
            if tag not in by_name:
                errors.append(f"{path}/{tag}: not in shape {shape.name}")
            else:
                _check_xml(child, by_name[tag], f"{path}/{tag}", errors)
    elif kind == "list":
        for child in element:
            if _local(child.tag) != "item":
                errors.append(f"{path}/{_local(child.tag)}: list items must be <item>")
            _check_xml(child, shape.member, f"{path}/item", errors)  # type: ignore[attr-defined]
    elif kind in ("integer", "long"):
        if not (element.text or "").lstrip("-").isdigit():
            errors.append(f"{path}: expected integer, got {element.text!r}")
    elif kind == "boolean":
        if element.text not in ("true", "false"):
            errors.append(f"{path}: expected boolean")
    elif len(element):
        errors.append(f"{path}: scalar {kind} has child elements")


def ec2_shape_errors(operation: str, xml_body: bytes) -> list[str]:
    """Every way an EC2 XML response breaks the output shape of ``operation``."""
    shape = _SESSION.get_service_model("ec2").operation_model(operation).output_shape
    root = ET.fromstring(xml_body)
    errors: list[str] = []
    if root.tag != "{http://ec2.amazonaws.com/doc/2016-11-15/}" + operation + "Response":
        errors.append(f"root element {root.tag} is not {operation}Response in the EC2 namespace")
    by_name = {m.serialization.get("name", n): m for n, m in shape.members.items()}
    for child in root:
        tag = _local(child.tag)
        if tag == "requestId":
            continue
        if tag not in by_name:
            errors.append(f"/{tag}: not in shape {shape.name}")
        else:
            _check_xml(child, by_name[tag], f"/{tag}", errors)
    return errors
