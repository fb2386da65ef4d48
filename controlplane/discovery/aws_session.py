"""The boto3 session discovery reads AWS through, without the response work it does not need."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.session


def keep_as_sent(value: Any) -> Any:
    """botocore timestamp parser that returns the wire value: epoch seconds (a number such as
    1.731532991984E9) from the ECS JSON API, a string from XML APIs."""
    return value


def lean_session(region: str | None = None) -> boto3.session.Session:
    """A session whose clients keep timestamps as sent instead of building timezone-aware
    datetimes (botocore's default; a large share of a resync's CPU). Discovery converts the
    one timestamp it reads (`startedAt`) itself."""
    core = botocore.session.get_session()
    core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=keep_as_sent)
    return boto3.session.Session(botocore_session=core, region_name=region)
