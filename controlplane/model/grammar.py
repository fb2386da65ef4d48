"""The grammar of label values: each kind of value, what it accepts (said in words, bounds included)
and its parser. Pure and total: `parse` returns a value or raises ValueError, for any string.

Values reach a grammar already trimmed and made of printable ASCII (the label reader refuses the
rest), so no parser needs to think about Unicode digits, case folding or control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from controlplane.model.mesh import HeaderMatch, Split, WeightedTarget

T = TypeVar("T")

_SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_HOST_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
_HOST = re.compile(rf"\*|(\*\.)?{_HOST_LABEL}(\.{_HOST_LABEL})*")
_SNI = re.compile(rf"{_HOST_LABEL}(\.{_HOST_LABEL})*")
_PATH = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_GRPC_METHOD = re.compile(r"/[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*/[A-Za-z_][A-Za-z0-9_]*")
_GRPC_SERVICE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*)?")
_HEADER_NAME = re.compile(r"[a-z0-9!#$%&'*+.^_`|~-]+")
_HEADER_VALUE = re.compile(r"[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?")
_INTEGER = re.compile(r"[0-9]{1,10}")
_PERCENT = re.compile(r"([0-9]{1,3}(\.[0-9]{1,6})?)%?")
# At most 12 digits before and 9 after the point: more cannot name a duration within any bound.
_DURATION = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,9}))?(ms|s|m|h)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}

MAX_HOST_CHARS = 253
MAX_HEADER_MATCHES = 16
MAX_WEIGHT = 10_000
MAX_WEIGHTED_TARGETS = 16
MAX_UPSTREAMS = 64
DAY_MS = 24 * 3_600_000


class Grammar(Generic[T]):
    """One kind of label value."""

    @property
    def expected(self) -> str:
        raise NotImplementedError

    def parse(self, raw: str) -> T:
        """The value, or ValueError (its text, when not empty, says what in particular is wrong)."""
        raise NotImplementedError


def milliseconds_text(ms: int) -> str:
    """A duration as the shortest exact label value: 0, 250ms, 5s, 2m, 24h."""
    if ms == 0:
        return "0"
    for unit in ("h", "m", "s"):
        if ms % _UNIT_MS[unit] == 0:
            return f"{ms // _UNIT_MS[unit]}{unit}"
    return f"{ms}ms"


@dataclass(frozen=True, slots=True)
class Duration(Grammar[int]):
    """A number (decimals allowed) and a unit, parsed exactly to whole milliseconds."""

    minimum_ms: int = 1
    maximum_ms: int = DAY_MS

    @property
    def expected(self) -> str:
        return (
            "a duration such as 250ms, 1.5s, 2m or 1h (whole milliseconds), "
            f"from {milliseconds_text(self.minimum_ms)} to {milliseconds_text(self.maximum_ms)}"
        )

    def parse(self, raw: str) -> int:
        lowered = raw.lower()
        if lowered == "0":
            ms = 0
        else:
            match = _DURATION.fullmatch(lowered)
            if not match:
                raise ValueError("")
            whole, fraction, unit = match.group(1), match.group(2) or "", match.group(3)
            scaled = int(whole + fraction) * _UNIT_MS[unit]
            ms, remainder = divmod(scaled, 10 ** len(fraction))
            if remainder:
                raise ValueError(f"{raw} is not a whole number of milliseconds")
        if not self.minimum_ms <= ms <= self.maximum_ms:
            raise ValueError("")
        return ms


@dataclass(frozen=True, slots=True)
class Integer(Grammar[int]):
    low: int
    high: int

    @property
    def expected(self) -> str:
        return f"an integer {self.low}-{self.high}"

    def parse(self, raw: str) -> int:
        if not _INTEGER.fullmatch(raw) or not self.low <= int(raw) <= self.high:
            raise ValueError("")
        return int(raw)


@dataclass(frozen=True, slots=True)
class Percent(Grammar[float]):
    """More than 0 and at most 100, with up to 6 decimals and an optional '%'."""

    @property
    def expected(self) -> str:
        return "a percent more than 0 and at most 100 (e.g. 20 or 12.5%)"

    def parse(self, raw: str) -> float:
        match = _PERCENT.fullmatch(raw)
        if not match or not 0 < float(match.group(1)) <= 100:
            raise ValueError("")
        return float(match.group(1))


@dataclass(frozen=True, slots=True)
class Choice(Grammar[Any]):
    """One value of an enumeration, case-insensitive."""

    kind: type[StrEnum]

    @property
    def expected(self) -> str:
        return "one of " + ", ".join(member.value for member in self.kind)

    def parse(self, raw: str) -> Any:
        for member in self.kind:
            if raw.lower() == member.value:
                return member
        raise ValueError("")


@dataclass(frozen=True, slots=True)
class Words(Grammar[Any]):
    """Fixed words mapped to values, case-insensitive: true/false, plain/tls."""

    values: tuple[tuple[str, Any], ...]
    text: str

    @property
    def expected(self) -> str:
        return self.text

    def parse(self, raw: str) -> Any:
        for word, value in self.values:
            if raw.lower() == word:
                return value
        raise ValueError("")


BOOLEAN = Words((("true", True), ("yes", True), ("on", True), ("1", True), ("false", False), ("no", False), ("off", False), ("0", False)), "true or false")


@dataclass(frozen=True, slots=True)
class Pattern(Grammar[str]):
    """A string matching a regular expression, optionally lowercased first."""

    regex: re.Pattern[str]
    text: str
    lowercase: bool = False
    max_chars: int = 0

    @property
    def expected(self) -> str:
        return self.text

    def parse(self, raw: str) -> str:
        value = raw.lower() if self.lowercase else raw
        if not self.regex.fullmatch(value) or (self.max_chars and len(value) > self.max_chars):
            raise ValueError("")
        return value


SERVICE_NAME = Pattern(_SERVICE_NAME, "a service name: lowercase letters, digits and '-', 1-63 characters")
PATH = Pattern(_PATH, "a path starting with '/' (letters, digits and -._~!$&'()*+,;=:@%/)")
GRPC_METHOD = Pattern(_GRPC_METHOD, "an exact gRPC method path /package.Service/Method, e.g. /routeguide.RouteGuide/GetFeature")
GRPC_SERVICE = Pattern(_GRPC_SERVICE, "a gRPC service name such as routeguide.RouteGuide ('' = the whole server)")
HEADER_NAME = Pattern(_HEADER_NAME, "a header name (letters, digits and !#$%&'*+.^_`|~-)", lowercase=True)
SNI = Pattern(_SNI, f"a host name of at most {MAX_HOST_CHARS} characters", lowercase=True, max_chars=MAX_HOST_CHARS)


def is_service_name(text: str | None) -> bool:
    return text is not None and _SERVICE_NAME.fullmatch(text) is not None


def _items(raw: str) -> list[str]:
    return [part.strip() for part in raw.split(",") if part.strip()]


@dataclass(frozen=True, slots=True)
class Hosts(Grammar[tuple[str, ...]]):
    @property
    def expected(self) -> str:
        return (
            "a comma-separated list of host names without a port (each at most "
            f"{MAX_HOST_CHARS} characters), '*' or '*.domain' wildcards"
        )

    def parse(self, raw: str) -> tuple[str, ...]:
        hosts = sorted({host.lower() for host in _items(raw)})
        if not hosts:
            raise ValueError("")
        for host in hosts:
            if len(host) > MAX_HOST_CHARS or not _HOST.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name" if len(host) <= 80 else "")
        return tuple(hosts)


@dataclass(frozen=True, slots=True)
class Headers(Grammar[tuple[HeaderMatch, ...]]):
    @property
    def expected(self) -> str:
        return (
            f"a comma-separated list of at most {MAX_HEADER_MATCHES} header matches 'name=value' (exact) or "
            "'name' (present), names without ':', each name once, no commas in values"
        )

    def parse(self, raw: str) -> tuple[HeaderMatch, ...]:
        found: dict[str, HeaderMatch] = {}
        for item in _items(raw):
            name, equals, value = item.partition("=")
            name = name.strip().lower()
            if not _HEADER_NAME.fullmatch(name) or name in found:
                raise ValueError("")
            if equals:
                value = value.strip()
                if not _HEADER_VALUE.fullmatch(value):
                    raise ValueError("")
                found[name] = HeaderMatch(name, value)
            else:
                found[name] = HeaderMatch(name)
        if not found or len(found) > MAX_HEADER_MATCHES:
            raise ValueError("")
        return tuple(sorted(found.values(), key=lambda h: h.name))


@dataclass(frozen=True, slots=True)
class Weights(Grammar[Split]):
    @property
    def expected(self) -> str:
        return (
            f"a comma-separated list of at most {MAX_WEIGHTED_TARGETS} service:weight with integer weights "
            f"0-{MAX_WEIGHT}, not all 0, e.g. orders:90,orders-next:10"
        )

    def parse(self, raw: str) -> Split:
        targets: dict[str, int] = {}
        for item in _items(raw):
            name, colon, weight = item.partition(":")
            name, weight = name.strip(), weight.strip()
            if not colon or not _SERVICE_NAME.fullmatch(name) or name in targets or not _INTEGER.fullmatch(weight):
                raise ValueError("")
            if int(weight) > MAX_WEIGHT:
                raise ValueError("")
            targets[name] = int(weight)
        if not targets or len(targets) > MAX_WEIGHTED_TARGETS or sum(targets.values()) == 0:
            raise ValueError("")
        return Split(tuple(WeightedTarget(name, weight) for name, weight in sorted(targets.items())))


@dataclass(frozen=True, slots=True)
class ServiceNames(Grammar[tuple[str, ...]]):
    @property
    def expected(self) -> str:
        return f"a comma-separated list of at most {MAX_UPSTREAMS} service names (lowercase letters, digits and '-')"

    def parse(self, raw: str) -> tuple[str, ...]:
        names = tuple(sorted(set(_items(raw))))
        if len(names) > MAX_UPSTREAMS or not all(_SERVICE_NAME.fullmatch(name) for name in names):
            raise ValueError("")
        return names


@dataclass(frozen=True, slots=True)
class Conditions(Grammar[tuple[str, ...]]):
    """A comma-separated subset of fixed words, in the order given, each once."""

    allowed: tuple[str, ...]

    @property
    def expected(self) -> str:
        return "a comma-separated list of " + ", ".join(self.allowed)

    def parse(self, raw: str) -> tuple[str, ...]:
        conditions = tuple(dict.fromkeys(item.lower() for item in _items(raw)))
        if not conditions or not all(condition in self.allowed for condition in conditions):
            raise ValueError("")
        return conditions


@dataclass(frozen=True, slots=True)
class OrWords(Grammar[Any]):
    """Some fixed words, or else a value of another grammar: `0` or `off` or a duration."""

    words: tuple[tuple[str, Any], ...]
    other: Grammar[Any]
    text: str

    @property
    def expected(self) -> str:
        return f"{self.other.expected}, {self.text}"

    def parse(self, raw: str) -> Any:
        for word, value in self.words:
            if raw.lower() == word:
                return value
        return self.other.parse(raw)
