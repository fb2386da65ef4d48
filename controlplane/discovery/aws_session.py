"""The boto3 session discovery reads AWS through, without the response work it does not need.

botocore parses every response by walking the operation's output shape member by member, turning
each timestamp into a timezone-aware datetime. For a resync of 10,000 tasks that walk was most
of the CPU. Discovery keeps botocore (signing, retries, errors, endpoints) and trims only this:
timestamps stay as sent, and the two large ECS responses it reads key by key (DescribeTasks,
ListTasks) are the decoded JSON itself, which for ECS's JSON protocol has the same keys and
values as the shape walk would produce.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
from botocore.parsers import JSONParser, ResponseParser, ResponseParserFactory

# Output shapes returned as decoded JSON, without the shape walk.
PLAIN_JSON_SHAPES = frozenset({"DescribeTasksResponse", "ListTasksResponse"})


def keep_as_sent(value: Any) -> Any:
    """botocore timestamp parser that returns the wire value: epoch seconds (a number such as
    1.731532991984E9) from the ECS JSON API, a string from XML APIs."""
    return value


class _PlainJSONParser(JSONParser):
    def _do_parse(self, response: dict[str, Any], shape: Any) -> dict[str, Any]:
        if shape is None or shape.name not in PLAIN_JSON_SHAPES:
            return super()._do_parse(response, shape)  # type: ignore[no-any-return]
        body = response["body"]
        parsed: dict[str, Any] = json.loads(body) if body else {}
        self._inject_response_metadata(parsed, response["headers"])
        return parsed


class LeanResponseParserFactory(ResponseParserFactory):
    """botocore's parser factory, with the JSON protocol's parser trimmed as above."""

    def create_parser(self, protocol_name: str) -> ResponseParser:
        if protocol_name == "json":
            return _PlainJSONParser(**self._defaults)
        return super().create_parser(protocol_name)  # type: ignore[no-any-return]


def lean_session(region: str | None = None) -> boto3.session.Session:
    """A session whose clients keep timestamps as sent and return ListTasks/DescribeTasks as
    decoded JSON. Discovery converts the one timestamp it reads (`startedAt`) itself."""
    core = botocore.session.get_session()
    factory = LeanResponseParserFactory()
    factory.set_parser_defaults(timestamp_parser=keep_as_sent)
    core.register_component("response_parser_factory", factory)
    return boto3.session.Session(botocore_session=core, region_name=region)
