"""The read-only web dashboard: clusters, services with endpoints and label problems, proxies with their
versions and NACKs, recent events; updated live over server-sent events. It reads what the admin API reads."""

from __future__ import annotations

import asyncio
import hmac
import json
from importlib import resources
from typing import Any, Awaitable, Callable, Protocol

import structlog
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message

from controlplane.admin.event_bus import Event, EventBus
from controlplane.proto.admin.v1 import admin_pb2 as api

log = structlog.get_logger()

COOKIE = "controlplane_dashboard_token"
STATIC = "dashboard_static"
# A change wakes the page at most this often; view ages tick on a slower timer.
STATE_MIN_INTERVAL = 0.25
STATE_REFRESH_INTERVAL = 2.0
RECENT_EVENTS = 50


class AdminReads(Protocol):
    def status(self) -> api.Status: ...
    def list_services(self) -> api.ListServicesResponse: ...
    def list_proxies(self) -> api.ListProxiesResponse: ...


def as_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def event_dict(event: Event) -> dict[str, Any]:
    return {
        "at": event.at,
        "kind": event.kind,
        "node_id": event.node_id,
        "type": event.type,
        "version": event.version,
        "message": event.message,
        "details": dict(event.details),
    }


class Dashboard:
    """The aiohttp application; `start()` binds it, `stop()` closes it and every open event stream."""

    def __init__(self, reads: AdminReads, events: EventBus, *, token: str | None = None) -> None:
        self._reads = reads
        self._events = events
        self._token = token
        self._recent: list[dict[str, Any]] = []
        self._runner: web.AppRunner | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self.port: int | None = None

    def state(self) -> dict[str, Any]:
        return {
            "status": as_dict(self._reads.status()),
            "services": as_dict(self._reads.list_services()),
            "proxies": as_dict(self._reads.list_proxies()),
            "events": list(self._recent),
        }

    # -- HTTP ---------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authenticate])
        app.router.add_get("/", self._index)
        app.router.add_get("/static/{name}", self._static)
        app.router.add_get("/api/state", self._state)
        app.router.add_get("/api/events", self._stream)
        return app

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if self._token is None:
            return await handler(request)
        offered = request.query.get("token")
        if offered is not None:
            if not hmac.compare_digest(offered.encode(), self._token.encode()):
                raise web.HTTPUnauthorized(text="wrong dashboard token\n")
            # Trade the token in the address for a cookie, so it leaves the address bar and the history.
            response = web.HTTPFound(request.rel_url.with_query({}))
            response.set_cookie(COOKIE, self._token, httponly=True, samesite="Strict", secure=request.secure)
            raise response
        presented = request.cookies.get(COOKIE) or request.headers.get("Authorization", "").removeprefix("Bearer ")
        if presented and hmac.compare_digest(presented.encode(), self._token.encode()):
            return await handler(request)
        raise web.HTTPUnauthorized(text="the dashboard needs the admin token: open /?token=<admin token> once\n")

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self._asset("index.html"), content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        types = {".js": "text/javascript", ".css": "text/css"}
        suffix = name[name.rfind(".") :] if "." in name else ""
        if suffix not in types or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        try:
            body = self._asset(name)
        except FileNotFoundError:
            raise web.HTTPNotFound() from None
        return web.Response(text=body, content_type=types[suffix], headers={"Cache-Control": "no-store"})

    @staticmethod
    def _asset(name: str) -> str:
        return resources.files("controlplane.admin").joinpath(STATIC, name).read_text(encoding="utf-8")

    async def _state(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.state())

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events: `state` (the whole picture, coalesced) and `event` (each thing that happened)."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        queue: asyncio.Queue[Event] = asyncio.Queue(1000)
        pump = asyncio.create_task(self._forward(queue))
        try:
            await self._send(response, "state", self.state())
            dirty, last_state = False, asyncio.get_running_loop().time()
            while not self._closing.is_set():
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=STATE_MIN_INTERVAL)
                    await self._send(response, "event", event_dict(event))
                    dirty = True
                except TimeoutError:
                    pass
                now = asyncio.get_running_loop().time()
                if (dirty and now - last_state >= STATE_MIN_INTERVAL) or now - last_state >= STATE_REFRESH_INTERVAL:
                    await self._send(response, "state", self.state())
                    dirty, last_state = False, now
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            pump.cancel()
        return response

    async def _forward(self, queue: asyncio.Queue[Event]) -> None:
        async for event in self._events.subscribe():
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    @staticmethod
    async def _send(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
        await response.write(f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode())

    async def _remember(self) -> None:
        async for event in self._events.subscribe():
            self._recent.append(event_dict(event))
            del self._recent[:-RECENT_EVENTS]

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, address: str, port: int) -> int:
        self._pump = asyncio.create_task(self._remember(), name="dashboard-events")
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, address, port, reuse_port=False)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        self._closing.set()
        if self._pump is not None:
            self._pump.cancel()
        if self._runner is not None:
            await self._runner.cleanup()
