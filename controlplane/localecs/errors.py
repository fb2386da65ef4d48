"""Errors the local ECS API returns; each maps to an AWS error code botocore understands."""

from __future__ import annotations


class EcsError(Exception):
    """An error returned to the client as HTTP 400 with JSON ``{"__type": code, "message": ...}``."""

    code = "ServerException"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ClientException(EcsError):
    """The request is wrong in a way the caller must fix (AWS ``ClientException``)."""

    code = "ClientException"


class InvalidParameterException(EcsError):
    """A parameter is missing or out of range (AWS ``InvalidParameterException``)."""

    code = "InvalidParameterException"


class ClusterNotFoundException(EcsError):
    """The named cluster does not exist (AWS ``ClusterNotFoundException``)."""

    code = "ClusterNotFoundException"


class ServiceNotFoundException(EcsError):
    """The named service does not exist in the cluster (AWS ``ServiceNotFoundException``)."""

    code = "ServiceNotFoundException"


class ServiceNotActiveException(EcsError):
    """The service exists but is being deleted or is deleted (AWS ``ServiceNotActiveException``)."""

    code = "ServiceNotActiveException"


class UnsupportedOperation(EcsError):
    """The operation exists in AWS but the local ECS does not implement it."""

    code = "UnsupportedFeatureException"
