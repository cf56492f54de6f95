"""What the httpx-based connectors share: one guarded way to call a vendor.

`VendorHttp` wraps an `httpx.AsyncClient` and owns the concerns no vendor module
should repeat:

- a total timeout per call, and the connector's `CallLimiter`;
- a cap on the response size, enforced while streaming the body;
- classification of every outcome into `services.actions.errors`: transport
  failures and timeouts are retryable, statuses per `error_for_status`;
- Retry-After parsing (seconds or an HTTP date), fed to the limiter's back-off;
- messages built from the vendor's own error text, scrubbed of the secrets
  the connector holds.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Self

import httpx

from services.actions.connectors.limits import CallLimiter
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import (
    ActionError,
    PermanentError,
    RetryableError,
    error_for_status,
    scrub_secrets,
)

logger = logging.getLogger(__name__)

ErrorDescriber = Callable[[Any], str | None]
QueryParams = Mapping[str, str | int | Sequence[str]]


def parse_retry_after(value: str | None, *, now_s: float | None = None) -> float | None:
    """Return the wait a Retry-After header asks for, in seconds, or None.

    Accepts delta-seconds ("30", "1.5") and HTTP dates; a date in the past is a
    wait of 0. Anything else is None, as if the header were absent.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now_s=now_s)
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _seconds_until_http_date(text: str, *, now_s: float | None) -> float | None:
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    current_s = time.time() if now_s is None else now_s
    return max(0.0, when.timestamp() - current_s)


def describe_error_body(body: bytes, describe: ErrorDescriber | None) -> str:
    """Turn a vendor's error body into one line: its own text when we can find it."""
    if not body:
        return "(empty body)"
    try:
        document = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", errors="replace").strip() or "(empty body)"
    if describe is not None:
        described = describe(document)
        if described:
            return described
    return json.dumps(document, separators=(",", ":"))[:200]


@dataclass(frozen=True)
class HttpAnswer:
    """A successful answer: status, headers and the whole (capped) body."""

    status: int
    headers: httpx.Headers
    body: bytes
    vendor: str

    def json(self) -> Any:
        """Decode the body as JSON; a body that is not JSON is a PermanentError."""
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise PermanentError(
                f"{self.vendor} answered HTTP {self.status} with a body that is not "
                f"JSON: {self.body[:80]!r}",
                vendor=self.vendor,
                status=self.status,
            ) from exc

    def json_object(self) -> dict[str, Any]:
        """Decode the body as a JSON object; anything else is a PermanentError."""
        document = self.json()
        if not isinstance(document, dict):
            raise PermanentError(
                f"expected a JSON object from {self.vendor}, got "
                f"{type(document).__name__}: {str(document)[:80]!r}",
                vendor=self.vendor,
                status=self.status,
            )
        return document


class VendorHttp:
    """One vendor's HTTP client, with timeouts, limits and error translation.

    `request()` returns an `HttpAnswer` for 2xx answers and raises ActionError
    for everything else. Use as `async with`, or call `aclose()` when done.
    """

    def __init__(
        self,
        vendor: str,
        *,
        base_url: str,
        headers: Mapping[str, str],
        timeout_s: float,
        max_response_bytes: int,
        limiter: CallLimiter,
        secrets: Sequence[str] = (),
        describe_error: ErrorDescriber | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        verify: str | bool = True,
    ) -> None:
        self.vendor = vendor
        self.limiter = limiter
        self._timeout_s = timeout_s
        self._max_response_bytes = max_response_bytes
        self._secrets = tuple(secrets)
        self._describe_error = describe_error
        self._client = httpx.AsyncClient(
            base_url=base_url,
            headers=dict(headers),
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            verify=verify,
            follow_redirects=False,
        )

    async def __aenter__(self) -> VendorHttp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the pooled connections; waits for nothing in flight."""
        await self._client.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> HttpAnswer:
        """Send one request within the limiter and return its 2xx answer.

        Waits for a limiter slot and at most the connector's timeout. Raises
        RetryableError for timeouts, transport failures, 408, 429 and 5xx
        (recording a 429's Retry-After with the limiter), PermanentError for
        other statuses and for answers larger than the cap.
        """
        async with self.limiter.slot():
            answer = await self._send(
                method,
                path,
                params=params,
                json_body=json_body,
                content=content,
                headers=headers,
            )
        if answer.status >= 300:
            raise self._status_error(answer)
        return answer

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None,
        json_body: Any,
        content: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> HttpAnswer:
        request = self._client.build_request(
            method,
            path,
            params=params,
            json=json_body,
            content=content,
            headers=headers,
        )
        try:
            response = await self._client.send(request, stream=True)
            try:
                body = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise RetryableError(
                f"{self.vendor} did not answer {method} {request.url.path} within "
                f"{self._timeout_s}s",
                vendor=self.vendor,
            ) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise PermanentError(
                f"cannot call {self.vendor} at {str(request.url)!r}: {exc}",
                vendor=self.vendor,
            ) from exc
        except httpx.TransportError as exc:
            raise RetryableError(
                f"could not reach {self.vendor} for {method} {request.url.path}: "
                f"{type(exc).__name__}",
                vendor=self.vendor,
            ) from exc
        logger.debug(
            "%s %s %s -> %s",
            self.vendor,
            method,
            request.url.path,
            response.status_code,
        )
        return HttpAnswer(response.status_code, response.headers, body, self.vendor)

    async def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit():
            self._check_size(int(declared))
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            self._check_size(size)
            chunks.append(chunk)
        return b"".join(chunks)

    def _check_size(self, size: int) -> None:
        if size > self._max_response_bytes:
            raise PermanentError(
                f"{self.vendor} answered with more than {self._max_response_bytes} "
                f"bytes ({size}); refusing to read it",
                vendor=self.vendor,
            )

    def _status_error(self, answer: HttpAnswer) -> ActionError:
        retry_after_s = parse_retry_after(answer.headers.get("retry-after"))
        if answer.status == 429 and retry_after_s is not None:
            self.limiter.back_off(retry_after_s)
        detail = describe_error_body(answer.body, self._describe_error)
        return error_for_status(
            self.vendor,
            answer.status,
            scrub_secrets(detail, self._secrets),
            retry_after_s=retry_after_s,
        )


class HttpConnector:
    """Base of the httpx connectors: lifecycle, limiter and one `VendorHttp`.

    Subclasses set `vendor` and provide `base_url`, `auth_headers` and
    `secrets`, and may override `describe_error` to pull the vendor's own
    message out of an error body. `start()` opens the client (refusing to start
    twice), `close()` closes it; `async with` does both. `transport` replaces
    the network, for unit tests with `httpx.MockTransport`.
    """

    vendor: ClassVar[str] = "vendor"

    def __init__(
        self,
        settings: ConnectorSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._transport = transport
        self.limiter = CallLimiter(
            self.vendor,
            max_concurrency=settings.max_concurrency,
            rate_per_s=settings.rate_per_s,
        )
        self._http: VendorHttp | None = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Open the HTTP client; raises RuntimeError when already started."""
        if self._http is not None:
            raise RuntimeError(f"the {self.vendor} connector is already started")
        self._http = VendorHttp(
            self.vendor,
            base_url=self.base_url(),
            headers=self.auth_headers(),
            timeout_s=self._settings.timeout_s,
            max_response_bytes=self._settings.max_response_bytes,
            limiter=self.limiter,
            secrets=self.secrets(),
            describe_error=self.describe_error,
            transport=self._transport,
        )

    async def close(self) -> None:
        """Close the HTTP client; calls still in flight fail."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    @property
    def http(self) -> VendorHttp:
        """The started client; raises RuntimeError before `start()`."""
        if self._http is None:
            raise RuntimeError(f"the {self.vendor} connector is not started")
        return self._http

    def base_url(self) -> str:
        """Where the vendor's API is."""
        raise NotImplementedError

    def auth_headers(self) -> dict[str, str]:
        """Headers sent with every request (credentials, content type)."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Values that must never appear in an error message."""
        raise NotImplementedError

    @staticmethod
    def describe_error(document: Any) -> str | None:
        """The vendor's own message in an error body, or None to show it raw."""
        return None
