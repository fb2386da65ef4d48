"""Container health check of the images (Docker HEALTHCHECK and ECS task definitions).

    probe.py grpc HOST:PORT [SERVICE]   healthy when grpc.health.v1 answers SERVING
    probe.py http URL                   healthy when the URL answers 200 (Envoy: http://127.0.0.1:9901/ready)

Exit status 0 healthy, 1 not (with one line on stderr saying why).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

TIMEOUT_SECONDS = 3.0


def grpc_health(target: str, service: str = "") -> str | None:
    """None when SERVING, else why not."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT_SECONDS)
        except grpc.RpcError as error:
            return f"{target}: {error.code().name} {error.details() or ''}".strip()
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{target}: {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}"
    return None


def http_ok(url: str) -> str | None:
    """None when the URL answers 200, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310 (a local URL we are given)
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except urllib.error.HTTPError as error:
        return f"{url}: HTTP {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"{url}: {getattr(error, 'reason', error)}"


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "grpc" and len(argv) <= 3:
        problem = grpc_health(argv[1], argv[2] if len(argv) == 3 else "")
    elif len(argv) == 2 and argv[0] == "http":
        problem = http_ok(argv[1])
    else:
        print("usage: probe.py grpc HOST:PORT [SERVICE] | probe.py http URL", file=sys.stderr)
        return 2
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
