"""The webhook action: one HTTP request built from the step's templates.

The URL's variables are percent-encoded, query values and headers render as plain
text (line breaks removed, so a value cannot add a header), and the payload
renders as JSON with every variable a JSON string. Each request carries the run's
idempotency key (`Idempotency-Key`) and mode (`X-Signalflow-Mode`), so receivers
can drop a redelivery and tell tests apart. With a signing secret named, the
request carries `<timestamp header>: <unix seconds>` and `<signature header>:
sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`; the secret itself is never
logged, echoed in an output or put in an error.

Connections go only to public addresses, or to those the allowlist names (see
`services.actions.addresses`); redirects are not followed. The answer's status is
the `status` output and each `response_fields` entry a dotted path into its JSON.
A non-2xx answer fails the step: 408, 429 and 5xx retryably (with the answer's
Retry-After), every other status permanently.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from services.actions.action import Action, Step, would_send
from services.actions.addresses import AddressPolicy, guarded_transport
from services.actions.command import Outcome
from services.actions.connectors.http import describe_error_body, parse_retry_after
from services.actions.connectors.limits import CallLimiter
from services.actions.errors import (
    ActionError,
    PermanentError,
    RetryableError,
    error_for_status,
    scrub_secrets,
)
from services.actions.settings import WebhookSettings
from signalflow.topics import ActionType
from signalflow.workflow.steps import WebhookParams
from signalflow.workflow.templates import Text, Var, parse_template
from signalflow.workflow.variables import RunContext

log = logging.getLogger(__name__)

VENDOR = "webhook"
USER_AGENT = "signalflow-webhook/1"


@dataclass
class WebhookRequest:
    """A rendered webhook request, before it is signed and sent."""

    method: str
    url: str
    headers: dict[str, str]
    query: dict[str, str]
    body: bytes | None
    timeout_s: float
    secret_name: str | None = None
    secret: str | None = field(default=None, repr=False)


class WebhookAction(Action[WebhookParams]):
    """Sends webhook steps, within per-host concurrency and rate limits."""

    action_type = ActionType.WEBHOOK

    def __init__(
        self,
        settings: WebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._settings = settings
        self._policy = AddressPolicy(settings.allowlist)
        self._client = httpx.AsyncClient(
            transport=transport
            or guarded_transport(
                self._policy, max_connections=settings.max_connections
            ),
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )
        self._limiters: dict[str, CallLimiter] = {}

    async def perform(self, step: Step[WebhookParams]) -> Outcome:
        request = self.render(step)
        if step.dry_run:
            return Outcome.ok(would_send(_dry_run_view(request)))
        self._sign(request)
        status, body = await self._send(request)
        outputs: dict[str, Any] = {"status": str(status)}
        outputs.update(_response_outputs(body, step.params.response_fields))
        return Outcome.ok(outputs)

    async def aclose(self) -> None:
        await self._client.aclose()

    def render(self, step: Step[WebhookParams]) -> WebhookRequest:
        """Render the step's URL, query, headers and payload from its context.

        Raises PermanentError for a URL that is not http(s) after rendering, a
        payload that is not JSON, and a signing secret that is not configured.
        """
        params = step.params
        url = render_url(params.url, step.context)
        _check_url(url)
        headers = {
            name: _header_value(step.plain(value))
            for name, value in params.headers.items()
        }
        headers["Idempotency-Key"] = step.command.idempotency_key
        headers["X-Signalflow-Mode"] = step.mode
        body: bytes | None = None
        if params.payload is not None:
            body = _render_payload(params.payload, step.context)
            headers["Content-Type"] = "application/json"
        return WebhookRequest(
            method=params.method,
            url=url,
            headers=headers,
            query={name: step.plain(value) for name, value in params.query.items()},
            body=body,
            timeout_s=min(params.timeout_s, self._settings.max_timeout_s),
            secret_name=params.signing_secret,
            secret=self._secret(params.signing_secret),
        )

    def _secret(self, name: str | None) -> str | None:
        if name is None:
            return None
        secret = self._settings.secrets.get(name)
        if secret is None:
            raise PermanentError(
                f"no webhook signing secret named {name!r} is configured; expected "
                f"one of {sorted(self._settings.secrets)!r}",
                vendor=VENDOR,
            )
        return secret.get_secret_value()

    def _sign(self, request: WebhookRequest) -> None:
        if request.secret is None:
            return
        timestamp = str(int(time.time()))
        signature = sign(request.secret, timestamp, request.body or b"")
        request.headers[self._settings.timestamp_header] = timestamp
        request.headers[self._settings.signature_header] = f"sha256={signature}"

    async def _send(self, request: WebhookRequest) -> tuple[int, bytes]:
        host = urlsplit(request.url).netloc
        limiter = self._limiter(host)
        async with limiter.slot():
            status, headers, body = await self._exchange(request)
        if status < 300:
            return status, body
        retry_after_s = parse_retry_after(headers.get("retry-after"))
        if status == 429 and retry_after_s is not None:
            limiter.back_off(retry_after_s)
        detail = scrub_secrets(describe_error_body(body, None), [request.secret])
        raise error_for_status(VENDOR, status, detail, retry_after_s=retry_after_s)

    async def _exchange(
        self, request: WebhookRequest
    ) -> tuple[int, httpx.Headers, bytes]:
        outgoing = self._client.build_request(
            request.method,
            request.url,
            params=request.query or None,
            headers=request.headers,
            content=request.body,
            timeout=request.timeout_s,
        )
        where = f"{request.method} {outgoing.url.host}{outgoing.url.path}"
        try:
            response = await self._client.send(outgoing, stream=True)
            try:
                body = await self._read_capped(response, where)
            finally:
                await response.aclose()
        except ActionError:
            raise
        except httpx.TimeoutException as error:
            raise RetryableError(
                f"webhook {where} did not answer within {request.timeout_s}s",
                vendor=VENDOR,
            ) from error
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
            raise PermanentError(
                f"cannot call webhook {where}: {error}", vendor=VENDOR
            ) from error
        except httpx.TransportError as error:
            raise RetryableError(
                f"could not reach webhook {where}: {type(error).__name__}",
                vendor=VENDOR,
            ) from error
        log.debug("webhook %s -> %d", where, response.status_code)
        return response.status_code, response.headers, body

    async def _read_capped(self, response: httpx.Response, where: str) -> bytes:
        cap = self._settings.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > cap:
                raise PermanentError(
                    f"webhook {where} answered with more than {cap} bytes; "
                    "refusing to read it",
                    vendor=VENDOR,
                    status=response.status_code,
                )
            chunks.append(chunk)
        return b"".join(chunks)

    def _limiter(self, host: str) -> CallLimiter:
        limiter = self._limiters.get(host)
        if limiter is None:
            limiter = CallLimiter(
                f"webhook {host}",
                max_concurrency=self._settings.per_host_concurrency,
                rate_per_s=self._settings.per_host_rate_per_s,
            )
            self._limiters[host] = limiter
        return limiter


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `<timestamp>.<body>` under `secret`.

    A receiver recomputes it from the timestamp header and the raw body, compares
    in constant time, and rejects old timestamps to stop replays.
    """
    message = timestamp.encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def render_url(source: str, context: RunContext) -> str:
    """Render a URL template, percent-encoding every variable's value."""
    template = parse_template(source, markup=False)
    parts: list[str] = []
    for node in template.nodes:
        if isinstance(node, Var):
            value = node.ref.resolve(context) or (node.default or "")
            parts.append(quote(value, safe=""))
        elif isinstance(node, Text):
            parts.append(node.text)
    return "".join(parts)


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PermanentError(
            f"expected an http(s) URL with a host, got {url[:200]!r}", vendor=VENDOR
        )


def _header_value(value: str) -> str:
    return " ".join(value.splitlines()).strip()


def _render_payload(source: str, context: RunContext) -> bytes:
    text = parse_template(source, markup=False).render_json(context)
    try:
        json.loads(text)
    except ValueError as error:
        raise PermanentError(
            f"the webhook payload did not render as JSON: {error}", vendor=VENDOR
        ) from error
    return text.encode()


def _response_outputs(body: bytes, fields: Mapping[str, str]) -> dict[str, str]:
    if not fields:
        return {}
    try:
        document = json.loads(body) if body else None
    except ValueError:
        document = None
    return {name: _text_at(document, path) for name, path in fields.items()}


def _text_at(document: Any, path: str) -> str:
    value = document
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return ""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _dry_run_view(request: WebhookRequest) -> dict[str, Any]:
    view: dict[str, Any] = {
        "method": request.method,
        "url": request.url,
        "headers": request.headers,
        "query": request.query,
    }
    if request.body is not None:
        view["payload"] = request.body.decode()
    if request.secret_name is not None:
        view["signed_with"] = request.secret_name
    return view
