"""AWS JSON 1.1 bodies as ECS writes them: timestamps are epoch seconds in ``E9`` notation.

ECS serialises a timestamp as a Java double: ``"createdAt":1.731532553836E9`` (milliseconds,
trailing zeros dropped, exponent form). botocore reads it like any number; a client that
parses the body itself sees exactly what AWS sends.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A float is wrapped in this marker while json.dumps runs, then unquoted into raw digits.
_MARK = "\x00e9:"
_MARKED = re.compile(r'"\\u0000e9:([0-9.E+-]+)"')


def java_double(value: float) -> str:
    """``value`` rounded to milliseconds, as Java's ``Double.toString`` prints it (>= 1e7: ``1.5E9``)."""
    rounded = round(value, 3)
    if not 1e7 <= abs(rounded) < 1e21:
        return repr(rounded)
    sign = "-" if rounded < 0 else ""
    whole, _, fraction = f"{abs(rounded):.3f}".partition(".")
    digits = (whole + fraction).rstrip("0")
    exponent = len(whole) - 1
    mantissa = digits[0] + "." + (digits[1:] or "0")
    return f"{sign}{mantissa}E{exponent}"


def _mark(value: Any) -> Any:
    if isinstance(value, float):
        return _MARK + java_double(value)
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    return value


def aws_json(body: dict[str, Any]) -> bytes:
    """``body`` as ECS's JSON: every float (only timestamps are floats in these APIs) in E9 form."""
    return _MARKED.sub(r"\1", json.dumps(_mark(body))).encode()
