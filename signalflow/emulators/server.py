"""Serve one HTTP emulator in this process: `EmulatorServer`.

A server binds a loopback port (a free one by default), runs uvicorn inside the
caller's event loop, and leaves signal handling to the process that owns it
(pytest, or the CLI), so several can run side by side.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from signalflow.emulators import demo
from signalflow.emulators.base import Emulator
from signalflow.emulators.tls import TlsFiles

logger = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class _InProcessServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the owning process decides."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class EmulatorServer:
    """Serves one HTTP emulator on a loopback port, in the running event loop.

    `start()` returns once the socket accepts connections; `stop()` releases
    requests held by `hang` faults and waits up to a few seconds for in-flight
    requests to finish. Use as `async with`. Refuses to start twice.
    """

    def __init__(
        self,
        emulator: Emulator,
        *,
        host: str = demo.DEMO_HOST,
        port: int = 0,
        tls: TlsFiles | None = None,
    ) -> None:
        self.emulator = emulator
        self.tls = tls
        self._host = host
        self._sock = bind_loopback(host, port)
        self.port: int = self._sock.getsockname()[1]
        self._server: _InProcessServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def origin(self) -> str:
        """Scheme, host and port, e.g. `http://127.0.0.1:8702`."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The URL a client library is configured with (origin plus API root)."""
        return self.origin + self.emulator.api_root

    async def __aenter__(self) -> EmulatorServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start serving; waits until uvicorn has started, raises if it failed."""
        if self._task is not None:
            raise RuntimeError(f"{self.emulator.name} emulator is already started")
        config = uvicorn.Config(
            self.emulator.app,
            lifespan="off",
            interface="asgi3",
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
            ssl_certfile=str(self.tls.cert_file) if self.tls else None,
            ssl_keyfile=str(self.tls.key_file) if self.tls else None,
        )
        self._server = _InProcessServer(config)
        self._task = asyncio.create_task(
            self._server.serve(sockets=[self._sock]),
            name=f"emulator-{self.emulator.name}",
        )
        await self._wait_started(self._server, self._task)
        logger.info("%s emulator listening on %s", self.emulator.name, self.base_url)

    async def _wait_started(
        self, server: uvicorn.Server, task: asyncio.Task[None]
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError(f"{self.emulator.name} emulator exited at start")
            if loop.time() > deadline:
                raise TimeoutError(
                    f"{self.emulator.name} emulator did not start within "
                    f"{START_TIMEOUT_S}s"
                )
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Stop serving and close the socket; waits for the server task to end."""
        if self._server is None or self._task is None:
            self._sock.close()
            return
        self.emulator.release_hung()
        self._server.should_exit = True
        try:
            await asyncio.wait_for(self._task, timeout=STOP_TIMEOUT_S)
        except TimeoutError:
            logger.warning("%s emulator did not stop in time", self.emulator.name)
        finally:
            self._sock.close()
            self._server = None
            self._task = None


def bind_loopback(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket bound to `host:port` (0 picks a free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock
