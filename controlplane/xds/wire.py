"""Hand-assembled xDS responses: each resource is serialized once per version and its bytes are
shared by every stream; a response is those bytes plus a few small fields. Protobuf's wire format
lets us concatenate: a repeated message field is just its encoded entries one after another."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from envoy.service.discovery.v3 import discovery_pb2

# Field numbers from envoy/service/discovery/v3/discovery.proto.
_LEN = 2  # wire type: length-delimited


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


# The tags of fields 1-15 fit in one byte; lengths below 128 are one byte too (versions, nonces,
# type URLs): no varint loop for them on every response.
_TAGS = tuple(bytes([number << 3 | _LEN]) for number in range(16))
_SHORT_LENGTHS = tuple(bytes([n]) for n in range(128))


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (string, bytes or message)."""
    size = len(payload)
    tag = _TAGS[number] if number < 16 else varint(number << 3 | _LEN)
    return tag + (_SHORT_LENGTHS[size] if size < 128 else varint(size)) + payload


@dataclass(frozen=True, slots=True)
class SotwResponse:
    """A DiscoveryResponse whose resources are pre-encoded `resources` entries (field 2)."""

    version_info: str
    type_url: str
    nonce: str
    encoded_resources: Sequence[bytes]

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                field(1, self.version_info.encode()),
                *self.encoded_resources,
                field(4, self.type_url.encode()),
                field(5, self.nonce.encode()),
            )
        )

    def message(self) -> discovery_pb2.DiscoveryResponse:
        return discovery_pb2.DiscoveryResponse.FromString(self.to_bytes())


@dataclass(frozen=True, slots=True)
class DeltaResponse:
    """A DeltaDiscoveryResponse: changed resources (pre-encoded field 2 entries) and removed names."""

    system_version_info: str
    type_url: str
    nonce: str
    encoded_resources: Sequence[bytes]
    removed_resources: Sequence[str]

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                field(1, self.system_version_info.encode()),
                *self.encoded_resources,
                field(4, self.type_url.encode()),
                field(5, self.nonce.encode()),
                *(field(6, name.encode()) for name in self.removed_resources),
            )
        )

    def message(self) -> discovery_pb2.DeltaDiscoveryResponse:
        return discovery_pb2.DeltaDiscoveryResponse.FromString(self.to_bytes())


def identity(payload: bytes) -> bytes:
    """The response serializer of our handlers: responses are already bytes."""
    return payload
