"""Packing messages into google.protobuf.Any, the one way every translate module does it."""

from __future__ import annotations

from google.protobuf import any_pb2
from google.protobuf.message import Message


def pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    # Deterministic: map fields (a Struct's, e.g. the access log's JSON format) are otherwise
    # written in an order that differs between processes, so two replicas (or one replica before
    # and after a restart) would send different bytes, and versions, for the same configuration.
    packed.Pack(message, deterministic=True)
    return packed
