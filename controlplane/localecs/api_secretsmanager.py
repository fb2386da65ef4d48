"""The few AWS Secrets Manager calls the control plane and its tests use, botocore-shaped:
CreateSecret, PutSecretValue, GetSecretValue, DescribeSecret, ListSecrets (JSON 1.1, `secretsmanager.*`).

Versions behave like AWS for these calls: each new value gets a VersionId and the AWSCURRENT stage,
the previous current one becomes AWSPREVIOUS. Secrets are kept in memory for the life of the server.
"""

from __future__ import annotations

import secrets as random_tokens
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from controlplane.localecs.errors import EcsError

TARGET_PREFIX = "secretsmanager."
ACCOUNT = "000000000000"


class ResourceNotFoundException(EcsError):
    code = "ResourceNotFoundException"


class ResourceExistsException(EcsError):
    code = "ResourceExistsException"


class InvalidParameterException(EcsError):
    code = "InvalidParameterException"


class InvalidRequestException(EcsError):
    code = "InvalidRequestException"


@dataclass
class _Version:
    version_id: str
    secret_string: str | None
    secret_binary: str | None  # base64, as on the wire
    created: float
    stages: list[str] = field(default_factory=list)


@dataclass
class _Secret:
    name: str
    arn: str
    description: str
    created: float
    changed: float
    versions: dict[str, _Version] = field(default_factory=dict)

    def staged(self, stage: str) -> _Version | None:
        return next((v for v in self.versions.values() if stage in v.stages), None)


class LocalSecrets:
    """Secrets by name; one lock per store (calls are rare and small)."""

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        self._secrets: dict[str, _Secret] = {}
        self._lock = threading.Lock()

    def _find(self, secret_id: object) -> _Secret:
        if not isinstance(secret_id, str) or not secret_id:
            raise InvalidParameterException("SecretId is required.")
        found = self._secrets.get(secret_id)
        if found is None:
            # An ARN, complete or without its random suffix, also names the secret.
            found = next((s for s in self._secrets.values() if secret_id in (s.arn, s.arn.rsplit("-", 1)[0])), None)
        if found is None:
            raise ResourceNotFoundException("Secrets Manager can't find the specified secret.")
        return found

    def _add_version(self, secret: _Secret, params: dict[str, Any]) -> _Version:
        string, binary = params.get("SecretString"), params.get("SecretBinary")
        if (string is None) == (binary is None):
            raise InvalidParameterException("You must provide either SecretString or SecretBinary.")
        token = params.get("ClientRequestToken") or str(uuid.uuid4())
        if token in secret.versions:
            return secret.versions[token]  # idempotent retry, as AWS
        previous = secret.staged("AWSPREVIOUS")
        if previous is not None:
            previous.stages.remove("AWSPREVIOUS")
        current = secret.staged("AWSCURRENT")
        if current is not None:
            current.stages.remove("AWSCURRENT")
            current.stages.append("AWSPREVIOUS")
        version = _Version(token, string, binary, time.time(), ["AWSCURRENT"])
        secret.versions[token] = version
        secret.changed = version.created
        return version

    def create_secret(self, params: dict[str, Any]) -> dict[str, Any]:
        name = params.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameterException("Name is required.")
        if name in self._secrets:
            raise ResourceExistsException(f"The operation failed because the secret {name} already exists.")
        now = time.time()
        arn = f"arn:aws:secretsmanager:{self.region}:{ACCOUNT}:secret:{name}-{random_tokens.token_hex(3)}"
        secret = _Secret(name=name, arn=arn, description=str(params.get("Description", "")), created=now, changed=now)
        result: dict[str, Any] = {"ARN": arn, "Name": name}
        if params.get("SecretString") is not None or params.get("SecretBinary") is not None:
            result["VersionId"] = self._add_version(secret, params).version_id
        self._secrets[name] = secret
        return result

    def put_secret_value(self, params: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(params.get("SecretId"))
        version = self._add_version(secret, params)
        return {"ARN": secret.arn, "Name": secret.name, "VersionId": version.version_id, "VersionStages": list(version.stages)}

    def get_secret_value(self, params: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(params.get("SecretId"))
        if params.get("VersionId"):
            version = secret.versions.get(str(params["VersionId"]))
        else:
            version = secret.staged(str(params.get("VersionStage") or "AWSCURRENT"))
        if version is None:
            raise ResourceNotFoundException("Secrets Manager can't find the specified secret value for staging label: AWSCURRENT")
        result: dict[str, Any] = {
            "ARN": secret.arn,
            "Name": secret.name,
            "VersionId": version.version_id,
            "VersionStages": list(version.stages),
            "CreatedDate": version.created,
        }
        if version.secret_string is not None:
            result["SecretString"] = version.secret_string
        else:
            result["SecretBinary"] = version.secret_binary
        return result

    def describe_secret(self, params: dict[str, Any]) -> dict[str, Any]:
        secret = self._find(params.get("SecretId"))
        return {
            "ARN": secret.arn,
            "Name": secret.name,
            "Description": secret.description,
            "CreatedDate": secret.created,
            "LastChangedDate": secret.changed,
            "VersionIdsToStages": {v.version_id: list(v.stages) for v in secret.versions.values() if v.stages},
        }

    def list_secrets(self, params: dict[str, Any]) -> dict[str, Any]:
        listed = sorted(self._secrets.values(), key=lambda s: s.name)
        return {
            "SecretList": [
                {"ARN": s.arn, "Name": s.name, "Description": s.description, "CreatedDate": s.created, "LastChangedDate": s.changed}
                for s in listed
            ]
        }

    def handle(self, target: str, params: dict[str, Any]) -> dict[str, Any]:
        operation = target[len(TARGET_PREFIX):]
        handlers = {
            "CreateSecret": self.create_secret,
            "PutSecretValue": self.put_secret_value,
            "GetSecretValue": self.get_secret_value,
            "DescribeSecret": self.describe_secret,
            "ListSecrets": self.list_secrets,
        }
        if operation not in handlers:
            raise InvalidRequestException(f"Operation {target!r} is not supported by the local Secrets Manager.")
        with self._lock:
            return handlers[operation](params)
