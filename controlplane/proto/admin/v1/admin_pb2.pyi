import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListServicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListServicesResponse(_message.Message):
    __slots__ = ("services", "problems", "mesh_revision")
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    MESH_REVISION_FIELD_NUMBER: _ClassVar[int]
    services: _containers.RepeatedCompositeFieldContainer[Service]
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    mesh_revision: int
    def __init__(self, services: _Optional[_Iterable[_Union[Service, _Mapping]]] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., mesh_revision: _Optional[int] = ...) -> None: ...

class GetServiceRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class Service(_message.Message):
    __slots__ = ("name", "state", "protocol", "route", "container_port", "declared_by", "endpoints", "problems", "policies")
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    DECLARED_BY_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    POLICIES_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: str
    protocol: str
    route: Route
    container_port: int
    declared_by: str
    endpoints: _containers.RepeatedCompositeFieldContainer[Endpoint]
    problems: _containers.RepeatedCompositeFieldContainer[Problem]
    policies: Policies
    def __init__(self, name: _Optional[str] = ..., state: _Optional[str] = ..., protocol: _Optional[str] = ..., route: _Optional[_Union[Route, _Mapping]] = ..., container_port: _Optional[int] = ..., declared_by: _Optional[str] = ..., endpoints: _Optional[_Iterable[_Union[Endpoint, _Mapping]]] = ..., problems: _Optional[_Iterable[_Union[Problem, _Mapping]]] = ..., policies: _Optional[_Union[Policies, _Mapping]] = ...) -> None: ...

class Route(_message.Message):
    __slots__ = ("hosts", "path_prefix", "port")
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    PATH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedScalarFieldContainer[str]
    path_prefix: str
    port: int
    def __init__(self, hosts: _Optional[_Iterable[str]] = ..., path_prefix: _Optional[str] = ..., port: _Optional[int] = ...) -> None: ...

class Policies(_message.Message):
    __slots__ = ("load_balancing", "retry_on", "num_retries", "hash_header", "slow_start_ms", "locality", "health_check", "health_check_target", "health_check_interval_ms", "health_check_timeout_ms", "healthy_threshold", "unhealthy_threshold", "outlier_detection", "outlier_consecutive_5xx", "outlier_consecutive_gateway_errors", "outlier_consecutive_local_origin_failures", "outlier_ejection_time_ms", "outlier_max_ejection_percent", "max_connections", "max_pending_requests", "max_requests", "max_retries", "per_try_timeout_ms", "retry_budget_percent", "route_timeout_ms", "idle_timeout_ms", "max_stream_duration_ms", "grpc_timeout", "rate_limit_average", "rate_limit_period_ms", "rate_limit_burst", "upstream_tls", "tls_sni", "weights", "upstreams", "route_method", "route_priority", "route_enabled", "route_headers", "zone_min_tasks", "outlier_failure_percent", "outlier_failure_min_requests", "outlier_failure_min_tasks")
    LOAD_BALANCING_FIELD_NUMBER: _ClassVar[int]
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    NUM_RETRIES_FIELD_NUMBER: _ClassVar[int]
    HASH_HEADER_FIELD_NUMBER: _ClassVar[int]
    SLOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    LOCALITY_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_TARGET_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    HEALTH_CHECK_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_DETECTION_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_CONSECUTIVE_5XX_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_CONSECUTIVE_GATEWAY_ERRORS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_CONSECUTIVE_LOCAL_ORIGIN_FAILURES_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_EJECTION_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_MAX_EJECTION_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MAX_CONNECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_PENDING_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    MAX_RETRIES_FIELD_NUMBER: _ClassVar[int]
    PER_TRY_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    RETRY_BUDGET_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    IDLE_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAM_DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    GRPC_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_AVERAGE_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_PERIOD_MS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_TLS_FIELD_NUMBER: _ClassVar[int]
    TLS_SNI_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    UPSTREAMS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_METHOD_FIELD_NUMBER: _ClassVar[int]
    ROUTE_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ROUTE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    ROUTE_HEADERS_FIELD_NUMBER: _ClassVar[int]
    ZONE_MIN_TASKS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FAILURE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FAILURE_MIN_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    OUTLIER_FAILURE_MIN_TASKS_FIELD_NUMBER: _ClassVar[int]
    load_balancing: str
    retry_on: str
    num_retries: int
    hash_header: str
    slow_start_ms: int
    locality: str
    health_check: str
    health_check_target: str
    health_check_interval_ms: int
    health_check_timeout_ms: int
    healthy_threshold: int
    unhealthy_threshold: int
    outlier_detection: bool
    outlier_consecutive_5xx: int
    outlier_consecutive_gateway_errors: int
    outlier_consecutive_local_origin_failures: int
    outlier_ejection_time_ms: int
    outlier_max_ejection_percent: int
    max_connections: int
    max_pending_requests: int
    max_requests: int
    max_retries: int
    per_try_timeout_ms: int
    retry_budget_percent: float
    route_timeout_ms: int
    idle_timeout_ms: int
    max_stream_duration_ms: int
    grpc_timeout: str
    rate_limit_average: int
    rate_limit_period_ms: int
    rate_limit_burst: int
    upstream_tls: bool
    tls_sni: str
    weights: _containers.RepeatedScalarFieldContainer[str]
    upstreams: _containers.RepeatedScalarFieldContainer[str]
    route_method: str
    route_priority: int
    route_enabled: bool
    route_headers: _containers.RepeatedScalarFieldContainer[str]
    zone_min_tasks: int
    outlier_failure_percent: int
    outlier_failure_min_requests: int
    outlier_failure_min_tasks: int
    def __init__(self, load_balancing: _Optional[str] = ..., retry_on: _Optional[str] = ..., num_retries: _Optional[int] = ..., hash_header: _Optional[str] = ..., slow_start_ms: _Optional[int] = ..., locality: _Optional[str] = ..., health_check: _Optional[str] = ..., health_check_target: _Optional[str] = ..., health_check_interval_ms: _Optional[int] = ..., health_check_timeout_ms: _Optional[int] = ..., healthy_threshold: _Optional[int] = ..., unhealthy_threshold: _Optional[int] = ..., outlier_detection: _Optional[bool] = ..., outlier_consecutive_5xx: _Optional[int] = ..., outlier_consecutive_gateway_errors: _Optional[int] = ..., outlier_consecutive_local_origin_failures: _Optional[int] = ..., outlier_ejection_time_ms: _Optional[int] = ..., outlier_max_ejection_percent: _Optional[int] = ..., max_connections: _Optional[int] = ..., max_pending_requests: _Optional[int] = ..., max_requests: _Optional[int] = ..., max_retries: _Optional[int] = ..., per_try_timeout_ms: _Optional[int] = ..., retry_budget_percent: _Optional[float] = ..., route_timeout_ms: _Optional[int] = ..., idle_timeout_ms: _Optional[int] = ..., max_stream_duration_ms: _Optional[int] = ..., grpc_timeout: _Optional[str] = ..., rate_limit_average: _Optional[int] = ..., rate_limit_period_ms: _Optional[int] = ..., rate_limit_burst: _Optional[int] = ..., upstream_tls: _Optional[bool] = ..., tls_sni: _Optional[str] = ..., weights: _Optional[_Iterable[str]] = ..., upstreams: _Optional[_Iterable[str]] = ..., route_method: _Optional[str] = ..., route_priority: _Optional[int] = ..., route_enabled: _Optional[bool] = ..., route_headers: _Optional[_Iterable[str]] = ..., zone_min_tasks: _Optional[int] = ..., outlier_failure_percent: _Optional[int] = ..., outlier_failure_min_requests: _Optional[int] = ..., outlier_failure_min_tasks: _Optional[int] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("address", "port", "task_arn", "task_id", "cluster", "task_definition", "health", "lifecycle", "availability_zone")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    TASK_ARN_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TASK_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    LIFECYCLE_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_ZONE_FIELD_NUMBER: _ClassVar[int]
    address: str
    port: int
    task_arn: str
    task_id: str
    cluster: str
    task_definition: str
    health: str
    lifecycle: str
    availability_zone: str
    def __init__(self, address: _Optional[str] = ..., port: _Optional[int] = ..., task_arn: _Optional[str] = ..., task_id: _Optional[str] = ..., cluster: _Optional[str] = ..., task_definition: _Optional[str] = ..., health: _Optional[str] = ..., lifecycle: _Optional[str] = ..., availability_zone: _Optional[str] = ...) -> None: ...

class Problem(_message.Message):
    __slots__ = ("service", "task_definition", "container", "label", "value", "severity", "message", "kind")
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    TASK_DEFINITION_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    service: str
    task_definition: str
    container: str
    label: str
    value: str
    severity: str
    message: str
    kind: str
    def __init__(self, service: _Optional[str] = ..., task_definition: _Optional[str] = ..., container: _Optional[str] = ..., label: _Optional[str] = ..., value: _Optional[str] = ..., severity: _Optional[str] = ..., message: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class ListProxiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListProxiesResponse(_message.Message):
    __slots__ = ("proxies",)
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    proxies: _containers.RepeatedCompositeFieldContainer[Proxy]
    def __init__(self, proxies: _Optional[_Iterable[_Union[Proxy, _Mapping]]] = ...) -> None: ...

class Proxy(_message.Message):
    __slots__ = ("node_id", "node_cluster", "role", "peer", "connected_since", "user_agent", "types", "stream_id", "identity")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_SINCE_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    node_cluster: str
    role: str
    peer: str
    connected_since: _timestamp_pb2.Timestamp
    user_agent: str
    types: _containers.RepeatedCompositeFieldContainer[ResourceTypeStatus]
    stream_id: int
    identity: str
    def __init__(self, node_id: _Optional[str] = ..., node_cluster: _Optional[str] = ..., role: _Optional[str] = ..., peer: _Optional[str] = ..., connected_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user_agent: _Optional[str] = ..., types: _Optional[_Iterable[_Union[ResourceTypeStatus, _Mapping]]] = ..., stream_id: _Optional[int] = ..., identity: _Optional[str] = ...) -> None: ...

class ResourceTypeStatus(_message.Message):
    __slots__ = ("type", "type_url", "version_sent", "version_acked", "responses_sent", "nacks", "last_nack", "resource_names", "sent_at", "acked_at", "resends", "next_resend_at")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    VERSION_SENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_ACKED_FIELD_NUMBER: _ClassVar[int]
    RESPONSES_SENT_FIELD_NUMBER: _ClassVar[int]
    NACKS_FIELD_NUMBER: _ClassVar[int]
    LAST_NACK_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_NAMES_FIELD_NUMBER: _ClassVar[int]
    SENT_AT_FIELD_NUMBER: _ClassVar[int]
    ACKED_AT_FIELD_NUMBER: _ClassVar[int]
    RESENDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_RESEND_AT_FIELD_NUMBER: _ClassVar[int]
    type: str
    type_url: str
    version_sent: str
    version_acked: str
    responses_sent: int
    nacks: int
    last_nack: Nack
    resource_names: _containers.RepeatedScalarFieldContainer[str]
    sent_at: _timestamp_pb2.Timestamp
    acked_at: _timestamp_pb2.Timestamp
    resends: int
    next_resend_at: _timestamp_pb2.Timestamp
    def __init__(self, type: _Optional[str] = ..., type_url: _Optional[str] = ..., version_sent: _Optional[str] = ..., version_acked: _Optional[str] = ..., responses_sent: _Optional[int] = ..., nacks: _Optional[int] = ..., last_nack: _Optional[_Union[Nack, _Mapping]] = ..., resource_names: _Optional[_Iterable[str]] = ..., sent_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., acked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., resends: _Optional[int] = ..., next_resend_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Nack(_message.Message):
    __slots__ = ("version", "error", "at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    version: str
    error: str
    at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[str] = ..., error: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetProxyConfigRequest(_message.Message):
    __slots__ = ("node_id", "stream_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    stream_id: int
    def __init__(self, node_id: _Optional[str] = ..., stream_id: _Optional[int] = ...) -> None: ...

class ProxyConfig(_message.Message):
    __slots__ = ("node_id", "role", "resources", "stream_id", "identity")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    STREAM_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    resources: _containers.RepeatedCompositeFieldContainer[Resource]
    stream_id: int
    identity: str
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., resources: _Optional[_Iterable[_Union[Resource, _Mapping]]] = ..., stream_id: _Optional[int] = ..., identity: _Optional[str] = ...) -> None: ...

class Resource(_message.Message):
    __slots__ = ("type", "type_url", "name", "version", "json")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TYPE_URL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    type: str
    type_url: str
    name: str
    version: str
    json: str
    def __init__(self, type: _Optional[str] = ..., type_url: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ..., json: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Status(_message.Message):
    __slots__ = ("version", "ready", "mesh_revision", "services", "endpoints", "proxies", "problems", "clusters", "ecs_requests", "draining", "degraded", "failures", "config_age_seconds", "readiness_window_seconds", "pipeline_failures_total")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    MESH_REVISION_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    PROXIES_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    ECS_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    READINESS_WINDOW_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PIPELINE_FAILURES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    version: str
    ready: bool
    mesh_revision: int
    services: int
    endpoints: int
    proxies: int
    problems: int
    clusters: _containers.RepeatedCompositeFieldContainer[ClusterStatus]
    ecs_requests: EcsRequests
    draining: bool
    degraded: bool
    failures: _containers.RepeatedCompositeFieldContainer[StageFailure]
    config_age_seconds: float
    readiness_window_seconds: float
    pipeline_failures_total: int
    def __init__(self, version: _Optional[str] = ..., ready: _Optional[bool] = ..., mesh_revision: _Optional[int] = ..., services: _Optional[int] = ..., endpoints: _Optional[int] = ..., proxies: _Optional[int] = ..., problems: _Optional[int] = ..., clusters: _Optional[_Iterable[_Union[ClusterStatus, _Mapping]]] = ..., ecs_requests: _Optional[_Union[EcsRequests, _Mapping]] = ..., draining: _Optional[bool] = ..., degraded: _Optional[bool] = ..., failures: _Optional[_Iterable[_Union[StageFailure, _Mapping]]] = ..., config_age_seconds: _Optional[float] = ..., readiness_window_seconds: _Optional[float] = ..., pipeline_failures_total: _Optional[int] = ...) -> None: ...

class StageFailure(_message.Message):
    __slots__ = ("stage", "error", "since", "last", "consecutive")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FIELD_NUMBER: _ClassVar[int]
    stage: str
    error: str
    since: _timestamp_pb2.Timestamp
    last: _timestamp_pb2.Timestamp
    consecutive: int
    def __init__(self, stage: _Optional[str] = ..., error: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., consecutive: _Optional[int] = ...) -> None: ...

class EcsRequests(_message.Message):
    __slots__ = ("by_operation", "last_minute", "limit_per_second", "burst", "waited_seconds")
    class ByOperationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    BY_OPERATION_FIELD_NUMBER: _ClassVar[int]
    LAST_MINUTE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    BURST_FIELD_NUMBER: _ClassVar[int]
    WAITED_SECONDS_FIELD_NUMBER: _ClassVar[int]
    by_operation: _containers.ScalarMap[str, int]
    last_minute: int
    limit_per_second: float
    burst: int
    waited_seconds: float
    def __init__(self, by_operation: _Optional[_Mapping[str, int]] = ..., last_minute: _Optional[int] = ..., limit_per_second: _Optional[float] = ..., burst: _Optional[int] = ..., waited_seconds: _Optional[float] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("cluster", "view_age_seconds", "last_sync_seconds", "last_sync_api_calls", "last_error", "consecutive_failures", "last_success", "tasks", "api_calls_total")
    class LastSyncApiCallsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class ApiCallsTotalEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    VIEW_AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_SYNC_API_CALLS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CONSECUTIVE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    API_CALLS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    cluster: str
    view_age_seconds: float
    last_sync_seconds: float
    last_sync_api_calls: _containers.ScalarMap[str, int]
    last_error: str
    consecutive_failures: int
    last_success: _timestamp_pb2.Timestamp
    tasks: int
    api_calls_total: _containers.ScalarMap[str, int]
    def __init__(self, cluster: _Optional[str] = ..., view_age_seconds: _Optional[float] = ..., last_sync_seconds: _Optional[float] = ..., last_sync_api_calls: _Optional[_Mapping[str, int]] = ..., last_error: _Optional[str] = ..., consecutive_failures: _Optional[int] = ..., last_success: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tasks: _Optional[int] = ..., api_calls_total: _Optional[_Mapping[str, int]] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("kinds",)
    KINDS_FIELD_NUMBER: _ClassVar[int]
    kinds: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, kinds: _Optional[_Iterable[str]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("at", "kind", "node_id", "type", "version", "message", "details")
    class DetailsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    kind: str
    node_id: str
    type: str
    version: str
    message: str
    details: _containers.ScalarMap[str, str]
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., node_id: _Optional[str] = ..., type: _Optional[str] = ..., version: _Optional[str] = ..., message: _Optional[str] = ..., details: _Optional[_Mapping[str, str]] = ...) -> None: ...
