"""What every HTTP emulator shares: recording, fault injection and bearer auth.

An `Emulator` is a Starlette app wrapped by a small ASGI layer that, for every
request outside `/_emulator/`:

1. records it (method, path, query, headers with credentials redacted, body);
2. answers it with an injected fault if one matches (see `Fault`);
3. checks the bearer token, answering in the vendor's own error shape;
4. hands it to the vendor routes.

Control endpoints, for the demo and for tests in another process:

- `GET /_emulator/requests` lists what was received, `DELETE` forgets it;
- `POST /_emulator/faults` arms a fault (a `Fault` as JSON), `GET` lists the
  armed ones, `DELETE` disarms all.

Tests in the same process use `requests`, `inject()` and `reset()` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qs, parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

FaultKind = Literal["rate_limit", "server_error", "bad_request", "hang"]
FAULT_STATUS: dict[FaultKind, int] = {
    "rate_limit": 429,
    "server_error": 500,
    "bad_request": 400,
}
CONTROL_PREFIX = "/_emulator"
REDACTED_HEADERS = frozenset({"authorization", "cookie", "x-api-key"})


@dataclass
class Fault:
    """The next `count` requests matching `method` and `path` fail as `kind`.

    `path` is a glob (`fnmatch`) on the request path, `method` an HTTP method
    or "*". `rate_limit` answers 429 with `Retry-After: retry_after_s`,
    `server_error` 500, `bad_request` 400, each in the vendor's error shape;
    `hang` holds the request for `hang_s` seconds (past any sane client timeout)
    and then serves it normally.
    """

    kind: FaultKind
    path: str = "*"
    method: str = "*"
    count: int = 1
    retry_after_s: int = 1
    hang_s: float = 30.0

    def __post_init__(self) -> None:
        if self.kind not in ("rate_limit", "server_error", "bad_request", "hang"):
            raise ValueError(
                "expected kind to be rate_limit, server_error, bad_request or hang, "
                f"got {self.kind!r}"
            )
        if self.count < 1:
            raise ValueError(f"expected count of at least 1, got {self.count!r}")
        if self.retry_after_s < 0:
            raise ValueError(
                f"expected a non-negative retry_after_s, got {self.retry_after_s!r}"
            )
        self.method = self.method.upper()

    def matches(self, method: str, path: str) -> bool:
        """Whether this fault applies to a request with this method and path."""
        method_ok = self.method in ("*", method.upper())
        return method_ok and fnmatch.fnmatchcase(path, self.path)

    @classmethod
    def from_json(cls, document: Any) -> Fault:
        """Build a fault from the JSON the control endpoint receives."""
        if not isinstance(document, dict):
            raise ValueError(f"expected a JSON object, got {document!r}")
        unknown = set(document) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fault fields {sorted(unknown)!r}")
        return cls(**document)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator received it, credentials redacted."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = field(repr=False)

    def json(self) -> Any:
        """The body decoded as JSON (raises ValueError if it is not JSON)."""
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        """The body decoded as `application/x-www-form-urlencoded`."""
        return dict(parse_qsl(self.body.decode("utf-8")))

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view, the body as text."""
        view = asdict(self)
        view["body"] = self.body.decode("utf-8", errors="replace")
        return view


class Emulator:
    """Base of every HTTP emulator: subclasses give routes and error shapes.

    `token`, when set, is the bearer token every vendor request must carry.
    Call `release_hung()` before stopping the server so held requests end.
    """

    name: ClassVar[str] = "emulator"
    api_root: ClassVar[str] = ""

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self._release = asyncio.Event()
        self._app: Starlette | None = None

    # -- in-process API ------------------------------------------------------

    def inject(self, fault: Fault) -> None:
        """Arm a fault; faults are tried in the order they were injected."""
        self.faults.append(fault)

    def reset(self) -> None:
        """Forget recorded requests and disarm every fault (state is kept)."""
        self.requests.clear()
        self.faults.clear()

    def received(self, method: str = "*", path: str = "*") -> list[RecordedRequest]:
        """Recorded requests whose method and path (a glob) match."""
        probe = Fault(kind="server_error", method=method, path=path)
        return [r for r in self.requests if probe.matches(r.method, r.path)]

    def release_hung(self) -> None:
        """Let every request held by a `hang` fault go on now."""
        self._release.set()

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        """The ASGI application to serve."""
        return self._asgi

    def _starlette(self) -> Starlette:
        if self._app is None:
            self._app = Starlette(routes=[*self.control_routes(), *self.routes()])
        return self._app

    # -- what subclasses provide --------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The vendor endpoints."""
        raise NotImplementedError

    def error_response(self, status: int, message: str) -> Response:
        """An error in the vendor's own shape, for faults and failed auth."""
        return JSONResponse({"error": message}, status_code=status)

    def unauthorized_response(self) -> Response:
        """What the vendor answers to a missing or wrong token."""
        return self.error_response(401, "authentication failed")

    def authorized(self, headers: dict[str, str]) -> bool:
        """Whether a request's headers carry the expected bearer token."""
        if self.token is None:
            return True
        return headers.get("authorization", "") == f"Bearer {self.token}"

    # -- the ASGI layer -------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._starlette()
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await app(scope, receive, send)
            return

        body = await _read_body(receive)
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in scope["headers"]
        }
        self._record_request(scope, headers, body)

        fault = self._take_fault(scope["method"], scope["path"])
        if fault is not None and fault.kind != "hang":
            await self._fault_response(fault)(scope, _replay(body, receive), send)
            return
        if fault is not None:
            await self._hold(fault)

        if not self.authorized(headers):
            await self.unauthorized_response()(scope, _replay(body, receive), send)
            return
        await app(scope, _replay(body, receive), send)

    def _record_request(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        visible = {
            k: ("<redacted>" if k in REDACTED_HEADERS else v)
            for k, v in headers.items()
        }
        self.requests.append(
            RecordedRequest(scope["method"], scope["path"], query, visible, body)
        )

    def _take_fault(self, method: str, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.matches(method, path):
                fault.count -= 1
                if fault.count == 0:
                    self.faults.remove(fault)
                logger.info(
                    "%s: injecting %s into %s %s", self.name, fault.kind, method, path
                )
                return fault
        return None

    def _fault_response(self, fault: Fault) -> Response:
        status = FAULT_STATUS[fault.kind]
        messages = {
            429: "rate limit exceeded",
            500: "internal error",
            400: "bad request",
        }
        response = self.error_response(status, messages[status])
        if status == 429:
            response.headers["Retry-After"] = str(fault.retry_after_s)
        return response

    async def _hold(self, fault: Fault) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), timeout=fault.hang_s)

    # -- control endpoints -----------------------------------------------------

    def control_routes(self) -> list[BaseRoute]:
        """The `/_emulator/` endpoints every emulator serves."""
        return [
            Route(
                f"{CONTROL_PREFIX}/requests",
                self._control_requests,
                methods=["GET", "DELETE"],
            ),
            Route(
                f"{CONTROL_PREFIX}/faults",
                self._control_faults,
                methods=["GET", "POST", "DELETE"],
            ),
        ]

    async def _control_requests(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.requests.clear()
            return Response(status_code=204)
        return JSONResponse({"requests": [r.to_json() for r in self.requests]})

    async def _control_faults(self, request: Request) -> Response:
        if request.method == "DELETE":
            self.faults.clear()
            return Response(status_code=204)
        if request.method == "GET":
            return JSONResponse({"faults": [asdict(f) for f in self.faults]})
        try:
            fault = Fault.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)
        self.inject(fault)
        return JSONResponse(asdict(fault), status_code=201)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that yields the body already read, then defers to the server."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def request_params(request: Request) -> dict[str, Any]:
    """Query, form and JSON body parameters of a request, merged in that order.

    Slack, Salesloft and others accept arguments in any of these places.
    """
    params: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if not body:
        return params
    content_type = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in content_type:
        params.update(parse_qsl(body.decode("utf-8")))
        return params
    try:
        document = json.loads(body)
    except ValueError:
        return params
    if isinstance(document, dict):
        params.update(document)
    return params


async def json_body(request: Request) -> Any:
    """The request body as JSON, or None when it is empty or not JSON."""
    body = await request.body()
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None
