"""When one route's header and query matches take every call another's take: conservative set
inclusion per condition, for the ownership rules (routing.covers). Pure.

`covers(first, second)` is True only when every value `second` accepts, `first` accepts too. Regexes
are compared by their text (and against exact values with RE2 itself): two different regexes that
accept the same values are not recognised as such."""

from __future__ import annotations

from collections.abc import Sequence

from controlplane.model.mesh import HeaderMatch, MatchKind, QueryMatch
from controlplane.model.regex import full_match

Condition = HeaderMatch | QueryMatch


def _value_accepts(kind: MatchKind, pattern: str, value: str) -> bool:
    """Does the match (kind, pattern) accept the literal value?"""
    if kind is MatchKind.EXACT:
        return value == pattern
    if kind is MatchKind.PREFIX:
        return value.startswith(pattern)
    if kind is MatchKind.SUFFIX:
        return value.endswith(pattern)
    if kind is MatchKind.CONTAINS:
        return pattern in value
    return full_match(pattern, value)


def _string_covers(first: tuple[MatchKind, str], second: tuple[MatchKind, str]) -> bool:
    """Every value the second string match accepts, the first accepts."""
    (kind1, value1), (kind2, value2) = first, second
    if (kind1, value1) == (kind2, value2) or kind2 is MatchKind.EXACT:
        return (kind1, value1) == (kind2, value2) or _value_accepts(kind1, value1, value2)
    if kind1 is MatchKind.PREFIX and kind2 is MatchKind.PREFIX:
        return value2.startswith(value1)
    if kind1 is MatchKind.SUFFIX and kind2 is MatchKind.SUFFIX:
        return value2.endswith(value1)
    if kind1 is MatchKind.CONTAINS and kind2 in (MatchKind.PREFIX, MatchKind.SUFFIX, MatchKind.CONTAINS):
        return value1 in value2
    return False


def condition_covers(first: Condition, second: Condition) -> bool:
    """Every request `second` (on the same name) accepts, `first` accepts."""
    invert1 = isinstance(first, HeaderMatch) and first.invert
    invert2 = isinstance(second, HeaderMatch) and second.invert
    if first.value is None:
        if invert1:  # absent
            return second.value is None and invert2
        return not (second.value is None and invert2)  # present: anything but absent requires presence
    if second.value is None:
        return False  # first needs a value match, second accepts any value (or none)
    if invert1 or invert2:
        if invert1 and invert2:
            return _string_covers((second.kind, second.value), (first.kind, first.value))
        # present and not matching A covers an exact value that A rejects
        return invert1 and second.kind is MatchKind.EXACT and not _value_accepts(first.kind, first.value, second.value)
    return _string_covers((first.kind, first.value), (second.kind, second.value))


def conditions_cover(first: Sequence[Condition], second: Sequence[Condition]) -> bool:
    """Every request matching all of `second` matches all of `first` (names compared as given)."""
    theirs = {c.name: c for c in second}
    return all(c.name in theirs and condition_covers(c, theirs[c.name]) for c in first)
