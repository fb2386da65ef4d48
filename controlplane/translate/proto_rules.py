"""The validation rules Envoy checks on every resource it receives (protoc-gen-validate's
`(validate.rules)` annotations, which xds-protos carries), checked here on a resource a patch changed:
a patched resource Envoy would reject refuses one service instead of being NACKed with every other.

The rules that decide most rejections are covered: required messages and oneofs, numeric and
duration bounds (also on wrapped numbers), string and list lengths, defined enum values, set members;
typed_config Anys are checked inside. Not covered: string patterns and well-known regexes, addresses,
uniqueness; Envoy's own checks beyond the annotations (a NACK then still names the resource).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2, duration_pb2, symbol_database
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from validate import validate_pb2

MAX_DEPTH = 64
_NUMERIC = ("float", "double", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32", "fixed64", "sfixed32", "sfixed64")
_WRAPPERS = frozenset(f"google.protobuf.{n}Value" for n in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes"))


def violations(message: Message) -> list[str]:
    """What in `message` breaks its validation rules, each as `path: reason`; empty when none."""
    found: list[str] = []
    _check_message(message, message.DESCRIPTOR.name, found, 0)
    return found


def _rules(field: FieldDescriptor) -> validate_pb2.FieldRules | None:
    options = field.GetOptions()
    return options.Extensions[validate_pb2.rules] if options.HasExtension(validate_pb2.rules) else None


def _check_message(message: Message, path: str, found: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    if isinstance(message, any_pb2.Any):
        inner = _unpacked(message)
        if inner is not None:
            _check_message(inner, path, found, depth + 1)
        return
    descriptor = message.DESCRIPTOR
    for oneof in descriptor.oneofs:
        options = oneof.GetOptions()
        if options.HasExtension(validate_pb2.required) and options.Extensions[validate_pb2.required] and message.WhichOneof(oneof.name) is None:
            found.append(f"{path}: one of {', '.join(f.name for f in oneof.fields)} is required")
    for field in descriptor.fields:
        where = f"{path}.{field.name}"
        rules = _rules(field)
        if field.is_repeated:
            values = getattr(message, field.name)
            if rules is not None:
                _check_repeated(values, rules, where, found, field)
            if field.message_type is not None and not field.message_type.GetOptions().map_entry:
                for index, item in enumerate(values):
                    _check_message(item, f"{where}[{index}]", found, depth + 1)
            elif field.message_type is not None and field.message_type.fields_by_name["value"].message_type is not None:
                for key, item in values.items():
                    _check_message(item, f"{where}[{key}]", found, depth + 1)
            continue
        is_message = field.message_type is not None
        present = message.HasField(field.name) if is_message or field.has_presence else True
        if rules is not None:
            _check_field(message, field, rules, present, where, found)
        if is_message and present:
            _check_message(getattr(message, field.name), where, found, depth + 1)


def _unpacked(packed: any_pb2.Any) -> Message | None:
    try:
        cls = symbol_database.Default().GetSymbol(packed.TypeName())
    except KeyError:
        return None  # a type we never pack: nothing to check it against
    inner: Message = cls()
    return inner if packed.Unpack(inner) else None


def _check_field(message: Message, field: FieldDescriptor, rules: validate_pb2.FieldRules, present: bool, where: str, found: list[str]) -> None:
    kind = rules.WhichOneof("type")
    if not present and field.containing_oneof is not None:
        return  # a oneof member's rules apply when it is the one set (the oneof's own rule is checked above)
    if rules.HasField("message") and rules.message.required and not present:
        found.append(f"{where}: is required")
    if kind is None or not present:
        if kind == "duration" and rules.duration.required and not present:
            found.append(f"{where}: is required")
        if kind == "any" and rules.any.required and not present:
            found.append(f"{where}: is required")
        return
    value: Any = getattr(message, field.name)
    if field.message_type is not None and field.message_type.full_name in _WRAPPERS:
        value = value.value
    if kind in _NUMERIC:
        _check_number(value, getattr(rules, kind), where, found)
    elif kind == "duration" and isinstance(value, duration_pb2.Duration):
        _check_number(value.ToNanoseconds(), rules.duration, where, found, as_duration=True)
    elif kind == "string":
        _check_string(value, rules.string, where, found)
    elif kind == "enum" and rules.enum.defined_only and field.enum_type is not None and value not in field.enum_type.values_by_number:
        found.append(f"{where}: {value} is not a value of {field.enum_type.name}")


def _bound(rules: Any, name: str, as_duration: bool) -> Any:
    value = getattr(rules, name)
    return value.ToNanoseconds() if as_duration else value


def _text(value: Any, as_duration: bool) -> str:
    return f"{value / 1e9:g}s" if as_duration else f"{value:g}" if isinstance(value, float) else str(value)


def _check_number(value: Any, rules: Any, where: str, found: list[str], as_duration: bool = False) -> None:
    if getattr(rules, "ignore_empty", False) and not value:
        return
    for name, broken, words in (
        ("gt", lambda v, b: v <= b, "greater than"), ("gte", lambda v, b: v < b, "at least"),
        ("lt", lambda v, b: v >= b, "less than"), ("lte", lambda v, b: v > b, "at most"),
        ("const", lambda v, b: v != b, "exactly"),
    ):
        if rules.HasField(name):
            bound = _bound(rules, name, as_duration)
            if broken(value, bound):
                found.append(f"{where}: {_text(value, as_duration)} is not {words} {_text(bound, as_duration)}")
    members = list(getattr(rules, "in"))
    if members and not as_duration and value not in members:
        found.append(f"{where}: {_text(value, as_duration)} is not one of {members}")


def _check_string(value: str, rules: validate_pb2.StringRules, where: str, found: list[str]) -> None:
    if rules.ignore_empty and not value:
        return
    if rules.HasField("min_len") and len(value) < rules.min_len:
        found.append(f"{where}: needs at least {rules.min_len} characters")
    if rules.HasField("max_len") and len(value) > rules.max_len:
        found.append(f"{where}: takes at most {rules.max_len} characters")
    if rules.HasField("min_bytes") and len(value.encode()) < rules.min_bytes:
        found.append(f"{where}: needs at least {rules.min_bytes} bytes")
    if rules.HasField("max_bytes") and len(value.encode()) > rules.max_bytes:
        found.append(f"{where}: takes at most {rules.max_bytes} bytes")
    if list(getattr(rules, "in")) and value not in list(getattr(rules, "in")):
        found.append(f"{where}: {value!r} is not one of {list(getattr(rules, 'in'))}")


def _check_repeated(values: Any, rules: validate_pb2.FieldRules, where: str, found: list[str], field: FieldDescriptor) -> None:
    kind = rules.WhichOneof("type")
    if kind == "repeated":
        repeated = rules.repeated
        if repeated.ignore_empty and not len(values):
            return
        if repeated.HasField("min_items") and len(values) < repeated.min_items:
            found.append(f"{where}: needs at least {repeated.min_items} items")
        if repeated.HasField("max_items") and len(values) > repeated.max_items:
            found.append(f"{where}: takes at most {repeated.max_items} items")
        if repeated.HasField("items") and field.message_type is None:
            item_kind = repeated.items.WhichOneof("type")
            for index, item in enumerate(values):
                if item_kind in _NUMERIC:
                    _check_number(item, getattr(repeated.items, item_kind), f"{where}[{index}]", found)
                elif item_kind == "string":
                    _check_string(item, repeated.items.string, f"{where}[{index}]", found)
    elif kind == "map" and rules.map.HasField("min_pairs") and len(values) < rules.map.min_pairs:
        found.append(f"{where}: needs at least {rules.map.min_pairs} entries")
