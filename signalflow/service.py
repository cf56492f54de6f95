"""The lifecycle every signalflow service shares, and its health endpoint.

A service starts and stops through one interface, can be used with `async with`,
refuses to start twice, and stops cleanly on SIGTERM or SIGINT. `serve()` runs one
service in the foreground with its health endpoint beside it: `GET /health` answers
200 with the service's report while it runs, 503 while it starts or stops.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import signal
from enum import StrEnum
from types import TracebackType
from typing import Any, Self

from aiohttp import web

log = logging.getLogger(__name__)


class ServiceState(StrEnum):
    NEW = "new"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"


class ServiceStateError(RuntimeError):
    """Raised when a service is started twice or stopped before it started."""


class Service(abc.ABC):
    """Base of the long-running services.

    Subclasses implement `_start()` (connect, subscribe, spawn their loops) and
    `_stop()` (finish or hand back in-flight work, commit what is done, close), and
    may add details to `health()`.
    """

    name: str = "service"

    def __init__(self) -> None:
        self.state = ServiceState.NEW
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        """Start the service; returns once it runs. Raises on a second call."""
        if self.state is not ServiceState.NEW:
            raise ServiceStateError(f"{self.name} cannot start: it is {self.state}")
        self.state = ServiceState.STARTING
        log.info("%s starting", self.name)
        try:
            await self._start()
        except BaseException:
            self.state = ServiceState.FAILED
            raise
        self.state = ServiceState.RUNNING
        log.info("%s running", self.name)

    async def stop(self) -> None:
        """Stop the service: waits until `_stop()` has finished. Idempotent."""
        if self.state in (ServiceState.STOPPING, ServiceState.STOPPED):
            await self._stopped.wait()
            return
        self.state = ServiceState.STOPPING
        log.info("%s stopping", self.name)
        try:
            await self._stop()
        finally:
            self.state = ServiceState.STOPPED
            self._stopped.set()
            log.info("%s stopped", self.name)

    async def wait_stopped(self) -> None:
        """Wait until the service has stopped, for whatever reason."""
        await self._stopped.wait()

    def fail(self, error: BaseException) -> None:
        """Record that a background loop died; the health endpoint reports it."""
        log.error("%s failed: %s", self.name, error, exc_info=error)
        self.state = ServiceState.FAILED
        self._stopped.set()

    def health(self) -> dict[str, Any]:
        """Return the health report; subclasses add their own details."""
        return {"service": self.name, "state": str(self.state)}

    def routes(self) -> list[web.RouteDef]:
        """HTTP routes the service serves beside `/health` (none by default)."""
        return []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @abc.abstractmethod
    async def _start(self) -> None: ...

    @abc.abstractmethod
    async def _stop(self) -> None: ...


class HealthServer:
    """Serves `GET /health` for one service on `host:port`."""

    def __init__(self, service: Service, *, host: str, port: int) -> None:
        self._service = service
        self._host = host
        self._port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_routes(self._service.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self._host, self._port).start()
        log.info(
            "%s health on http://%s:%d/health",
            self._service.name,
            self._host,
            self._port,
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _health(self, request: web.Request) -> web.Response:
        report = self._service.health()
        status = 200 if self._service.state is ServiceState.RUNNING else 503
        return web.json_response(report, status=status)


async def serve(service: Service, *, host: str = "127.0.0.1", port: int) -> None:
    """Run `service` with its health endpoint until SIGTERM or SIGINT, then stop it.

    Returns once the service has stopped; raises if it failed.
    """
    health = HealthServer(service, host=host, port=port)
    await health.start()
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await service.start()
        waiters = [
            asyncio.create_task(stop_requested.wait()),
            asyncio.create_task(service.wait_stopped()),
        ]
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()
    finally:
        failed = service.state is ServiceState.FAILED
        await service.stop()
        await health.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    if failed:
        raise ServiceStateError(f"{service.name} failed; see the log above")
