"""Regular expressions in labels are RE2, as Envoy compiles them (`safe_regex`), not Python's `re`:
each is checked with RE2 itself when the label is parsed, against the limits Envoy applies, so a
pattern Envoy would refuse disables only the service whose label holds it. Pure."""

from __future__ import annotations

import re

import re2  # type: ignore[import-untyped]

MAX_REGEX_CHARS = 256
# Envoy refuses a regex whose compiled RE2 program is larger than this (runtime key
# re2.max_program_size.error_level, 100 unless an operator raises it).
MAX_PROGRAM_SIZE = 100

_LOOKAROUND = re.compile(r"\(\?<?[=!]")
_BACKREFERENCE = re.compile(r"(?<!\\)(?:\\\\)*\\[1-9]")


def _compiled(pattern: str) -> re2._Regexp:
    # Compiled anew each time (microseconds; labels are parsed once per mesh build): no cache to bound.
    options = re2.Options()
    options.log_errors = False  # RE2 would print every refusal on stderr; ours says it better
    return re2.compile(pattern, options=options)


def checked_regex(pattern: str) -> str:
    """`pattern` when Envoy accepts it as a `safe_regex`; ValueError saying why not otherwise."""
    if not pattern:
        raise ValueError("the regex is empty")
    if len(pattern) > MAX_REGEX_CHARS:
        raise ValueError(f"the regex is {len(pattern)} characters long; at most {MAX_REGEX_CHARS} are accepted")
    if _LOOKAROUND.search(pattern):
        raise ValueError("lookarounds ((?=, (?!, (?<=, (?<!) are not RE2 syntax")
    if _BACKREFERENCE.search(pattern):
        raise ValueError("backreferences (\\1 ... \\9) are not RE2 syntax")
    try:
        size = _compiled(pattern).programsize
    except re2.error as error:
        detail = error.args[0].decode(errors="replace") if error.args and isinstance(error.args[0], bytes) else str(error)
        raise ValueError(f"not RE2 syntax: {detail}") from None
    if size > MAX_PROGRAM_SIZE:
        raise ValueError(f"RE2 compiles it to a program of size {size}; Envoy accepts at most {MAX_PROGRAM_SIZE}: simplify it")
    return pattern


def full_match(pattern: str, text: str) -> bool:
    """True when RE2 matches the whole of `text` (Envoy matches header values whole)."""
    return _compiled(pattern).fullmatch(text) is not None
