"""Regenerates the dashboard screenshots in docs/img: `.venv/bin/python docs/make_screenshots.py`.

Starts the local ECS, the control plane and an edge Envoy on loopback, like the integration tests, and photographs
the dashboard in Debian's Chromium through Playwright."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from playwright.sync_api import sync_playwright

from controlplane.demo.stack import DemoStack

OUT = Path(__file__).resolve().parent / "img"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with DemoStack(cluster="prod", poll_interval=0.5) as stack:
        stack.start_local_ecs()
        stack.create_service("routeguide", stack.register(), 3)
        stack.create_service("orders", stack.register(family="orders", service="orders", labels={"xds.route.hosts": "orders.example.com"}), 2)
        broken = stack.register(family="billing", service="billing", labels={"xds.protocol": "carrier-pigeon", "xds.route.hosts": "billing.example.com"})
        stack.create_service("billing", broken, 1)
        for name, count in (("routeguide", 3), ("orders", 2), ("billing", 1)):
            stack.wait_for_running(name, count)
        stack.start_control_plane()
        edge = stack.start_envoy("edge-1")
        edge.wait_for_hosts("routeguide", stack.addresses(stack.running_tasks("routeguide")), timeout=20)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            stack.start_envoy("edge-2", listen_port=taken.getsockname()[1])
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                page.goto(f"http://127.0.0.1:{stack.dashboard_port}/")
                page.locator('[data-proxy="edge-2"][data-type="LDS"] td.nack').wait_for(timeout=20_000)
                page.screenshot(path=str(OUT / "dashboard-services.png"))
                page.locator("#proxies").scroll_into_view_if_needed()
                page.locator("#proxies").screenshot(path=str(OUT / "dashboard-proxies.png"))
                browser.close()


if __name__ == "__main__":
    main()
