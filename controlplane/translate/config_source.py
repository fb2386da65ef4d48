"""Where a proxy fetches the resources a resource refers to: always the ADS stream it is on."""

from __future__ import annotations

from envoy.config.core.v3 import config_source_pb2


def ads_config_source() -> config_source_pb2.ConfigSource:
    return config_source_pb2.ConfigSource(
        ads=config_source_pb2.AggregatedConfigSource(), resource_api_version=config_source_pb2.V3
    )
