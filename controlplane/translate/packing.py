"""Packing messages into google.protobuf.Any, the one way every translate module does it."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
