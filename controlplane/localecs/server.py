"""The HTTP front of the local ECS: ECS, SQS, SSM and Secrets Manager JSON APIs and the EC2 and
SNS query APIs on one port."""

from __future__ import annotations

import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import structlog

import time

from controlplane.localecs import api_ec2, api_ecs, api_secretsmanager, api_sns, api_ssm, sqs
from controlplane.localecs.addresses import is_loopback
from controlplane.localecs.backend import LocalEcs
from controlplane.localecs.errors import EcsError
from controlplane.localecs.sns import SnsError
from controlplane.localecs.wire import aws_json


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # Every request is already logged by the operation that ran; no stderr access log.
        return

    def _reply(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-amzn-RequestId", secrets.token_hex(16))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path.startswith("/_local/"):
            self._local("GET", b"")
            return
        # A liveness probe for scripts waiting on the server.
        self._reply(200, b'{"status": "ok"}', "application/json")

    def do_DELETE(self) -> None:  # noqa: N802 - stdlib naming
        self._local("DELETE", b"")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.startswith("/_local/"):
            self._local("POST", raw)
            return
        target = self.headers.get("X-Amz-Target")
        if target and target.startswith(sqs.TARGET_PREFIX):
            self._sqs(target, raw)
        elif target and target.startswith(api_ssm.TARGET_PREFIX):
            self._ecs(target, raw, service="ssm")
        elif target and target.startswith(api_secretsmanager.TARGET_PREFIX):
            self._ecs(target, raw, service="secretsmanager")
        elif target:
            self._ecs(target, raw)
        else:
            self._query(raw)

    def _fault(self, service: str, operation: str) -> EcsError | None:
        """Injected latency (slept here, outside every lock) and injected or throttling errors."""
        outcome = self.server.ecs.faults.check(service, operation)
        if outcome.latency:
            time.sleep(outcome.latency)
        if outcome.error is None:
            return None
        error = EcsError(outcome.message)
        error.code = outcome.error
        error.status = outcome.status
        return error

    def _local(self, method: str, raw: bytes) -> None:
        """Test hooks for subprocess-based tests: faults, throttling, event routes."""
        ecs = self.server.ecs
        try:
            body = json.loads(raw or b"{}")
            path = self.path.split("?", 1)[0].rstrip("/")
            result: Any
            if path == "/_local/faults" and method == "POST":
                result = {"id": ecs.inject_faults(**body)}
            elif path == "/_local/faults" and method == "DELETE":
                ecs.clear_faults()
                result = {"cleared": True}
            elif path == "/_local/faults":
                result = {"faults": ecs.faults.faults(), "limits": ecs.faults.limits(), "throttled": ecs.faults.throttled}
            elif path == "/_local/throttle" and method == "POST":
                ecs.throttle(body.get("rate"), body.get("burst"), body.get("operation", "*"), body.get("service", "ecs"))
                result = {"limits": ecs.faults.limits()}
            elif path == "/_local/events" and method == "POST":
                queue = ecs.route_events(
                    str(body["queue"]),
                    duplicate_rate=float(body.get("duplicate_rate", 0.0)),
                    reorder_rate=float(body.get("reorder_rate", 0.0)),
                )
                result = {"QueueUrl": queue.url}
            else:
                self._reply(404, json.dumps({"error": f"no {method} {path}"}).encode(), "application/json")
                return
        except (TypeError, KeyError, ValueError) as exc:
            self._reply(400, json.dumps({"error": str(exc)}).encode(), "application/json")
            return
        self._reply(200, json.dumps(result).encode(), "application/json")

    def _sqs(self, target: str, raw: bytes) -> None:
        content_type = "application/x-amz-json-1.0"
        try:
            params = json.loads(raw or b"{}")
            if not isinstance(params, dict):
                raise sqs.InvalidParameterValue("request body must be a JSON object")
            fault = self._fault("sqs", target[len(sqs.TARGET_PREFIX):])
            if fault is not None:
                raise fault
            # No ECS lock: a long poll waits here.
            response = sqs.handle(self.server.ecs.sqs, target, params, self.server.ecs.closing)
        except EcsError as exc:
            headers = exc.headers if isinstance(exc, sqs.SqsError) else {}
            body = json.dumps({"__type": exc.code, "message": exc.message}).encode()
            self._reply(exc.status, body, content_type, headers)
            return
        except json.JSONDecodeError as exc:
            self._reply(400, json.dumps({"__type": "SerializationException", "message": str(exc)}).encode(), content_type)
            return
        except Exception as exc:  # a bug here must reach the client as a 500, not a hang
            structlog.get_logger().exception("local_sqs.request_crashed", target=target)
            self._reply(500, json.dumps({"__type": "InternalFailure", "message": str(exc)}).encode(), content_type)
            return
        self._reply(200, json.dumps(response).encode(), content_type)

    def _ecs(self, target: str, raw: bytes, service: str = "ecs") -> None:
        log = structlog.get_logger()
        content_type = "application/x-amz-json-1.1"
        try:
            params = json.loads(raw or b"{}")
            if not isinstance(params, dict):
                raise EcsError("request body must be a JSON object")
            fault = self._fault(service, target.rsplit(".", 1)[-1])
            if fault is not None:
                raise fault
            # One lock for the whole operation: a response never mixes two task states.
            if service == "secretsmanager":
                response = self.server.secrets.handle(target, params)  # its own lock, not the ECS one
            else:
                with self.server.ecs.lock:
                    handle = api_ssm.handle if service == "ssm" else api_ecs.handle
                    response = handle(self.server.ecs, target, params)
        except EcsError as exc:
            log.info("local_ecs.request_failed", target=target, code=exc.code, message=exc.message)
            body = json.dumps({"__type": exc.code, "message": exc.message}).encode()
            self._reply(exc.status, body, content_type)
            return
        except json.JSONDecodeError as exc:
            body = json.dumps({"__type": "SerializationException", "message": str(exc)}).encode()
            self._reply(400, body, content_type)
            return
        except Exception as exc:  # a bug here must reach the client as a 500, not a hang
            log.exception("local_ecs.request_crashed", target=target)
            body = json.dumps({"__type": "ServerException", "message": str(exc)}).encode()
            self._reply(500, body, content_type)
            return
        self._reply(200, aws_json(response), content_type)

    def _query(self, raw: bytes) -> None:
        params = urllib.parse.parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        if api_sns.is_sns(params):
            self._sns(params)
        else:
            self._ec2(params)

    def _sns(self, params: dict[str, list[str]]) -> None:
        fault = self._fault("sns", params.get("Action", [""])[0])
        try:
            if fault is not None:
                raise fault
            body = api_sns.handle(self.server.ecs.sns, params)  # its own lock: publishing only enqueues
        except EcsError as exc:
            # Errors of other services (a queue lookup) reach SNS callers as SNS's own codes.
            foreign = not isinstance(exc, SnsError) and exc is not fault
            status, code = (400, "InvalidParameter") if foreign else (exc.status, exc.code)
            self._reply(status, api_sns.error_xml(code, exc.message).encode(), "text/xml")
            return
        self._reply(200, body.encode(), "text/xml")

    def _ec2(self, params: dict[str, list[str]]) -> None:
        if "Action" not in params:
            self._reply(400, api_ec2.error_xml("MissingAction", "No X-Amz-Target header and no Action parameter").encode(), "text/xml")
            return
        fault = self._fault("ec2", params["Action"][0])
        if fault is not None:
            self._reply(fault.status, api_ec2.error_xml(fault.code, fault.message).encode(), "text/xml")
            return
        try:
            with self.server.ecs.lock:
                body = api_ec2.handle(self.server.ecs, params)
        except api_ec2.Ec2Error as exc:
            self._reply(400, api_ec2.error_xml(exc.code, exc.message).encode(), "text/xml")
            return
        self._reply(200, body.encode(), "text/xml;charset=UTF-8")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ecs: LocalEcs) -> None:
        self.ecs = ecs
        self.secrets = api_secretsmanager.LocalSecrets()
        super().__init__(address, _Handler)


class LocalEcsServer:
    """Serves a ``LocalEcs`` over HTTP on a loopback address.

    ``options`` are passed to ``LocalEcs`` (e.g. ``deactivating_seconds``, ``log_dir``);
    pass ``ecs=`` to serve an existing one instead.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, ecs: LocalEcs | None = None, **options: Any) -> None:
        if not is_loopback(host):
            raise ValueError(f"local ECS host {host!r} is outside 127.0.0.0/8: it may only listen on loopback")
        self.ecs = ecs if ecs is not None else LocalEcs(**options)
        self._owns_ecs = ecs is None
        try:
            self._httpd = _Server((host, port), self.ecs)
        except BaseException:
            if self._owns_ecs:
                self.ecs.close()
            raise
        self._thread: threading.Thread | None = None
        self.ecs.sqs.base_url = self.url
        for queue in self.ecs.sqs.queues():
            queue.url = f"{self.url}/{sqs.ACCOUNT}/{queue.name}"

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` to use as boto3's ``endpoint_url``."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host if isinstance(host, str) else host.decode()}:{port}"

    def start(self) -> LocalEcsServer:
        """Serve in a daemon thread and return at once."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="local-ecs-http", daemon=True)
        self._thread.start()
        structlog.get_logger().info("local_ecs.listening", url=self.url)
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread until ``shutdown`` is called from another thread."""
        self._httpd.serve_forever(poll_interval=0.1)

    def shutdown(self) -> None:
        """Stop serving requests (safe from a signal handler's helper thread)."""
        self._httpd.shutdown()

    def close(self) -> None:
        """Stop serving, stop every task and wait for its processes."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        if self._owns_ecs:
            self.ecs.close()

    def __enter__(self) -> LocalEcsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
