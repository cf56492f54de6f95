"""Classification of vendor answers and failures, with httpx.MockTransport."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from services.actions.connectors.http import VendorHttp, parse_retry_after
from services.actions.connectors.limits import CallLimiter, TokenBucket
from services.actions.errors import (
    ActionError,
    PermanentError,
    RetryableError,
    scrub_secrets,
)

SECRET = "sk-very-secret-token"


def vendor_http(
    handler: Callable[[httpx.Request], httpx.Response],
    *,
    max_response_bytes: int = 1024,
) -> VendorHttp:
    return VendorHttp(
        "acme",
        base_url="https://api.acme.example",
        headers={"Authorization": f"Bearer {SECRET}"},
        timeout_s=1.0,
        max_response_bytes=max_response_bytes,
        limiter=CallLimiter("acme", max_concurrency=2, rate_per_s=100),
        secrets=[SECRET],
        describe_error=lambda doc: (
            doc.get("message") if isinstance(doc, dict) else None
        ),
        transport=httpx.MockTransport(handler),
    )


async def failure_of(
    handler: Callable[[httpx.Request], httpx.Response], **kwargs: int
) -> ActionError:
    async with vendor_http(handler, **kwargs) as http:
        with pytest.raises(ActionError) as caught:
            await http.request("GET", "/things")
    return caught.value


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30.0), ("1.5", 1.5), ("0", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_retry_after_reads_seconds(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_retry_after_reads_an_http_date() -> None:
    now = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=90), usegmt=True)
    earlier = format_datetime(now - timedelta(seconds=90), usegmt=True)

    assert parse_retry_after(later, now_s=now.timestamp()) == 90.0
    assert parse_retry_after(earlier, now_s=now.timestamp()) == 0.0


async def test_success_returns_the_body() -> None:
    async with vendor_http(lambda r: httpx.Response(200, json={"id": 7})) as http:
        answer = await http.request("GET", "/things")

    assert answer.json_object() == {"id": 7}


async def test_429_is_retryable_with_retry_after() -> None:
    error = await failure_of(
        lambda r: httpx.Response(429, headers={"Retry-After": "12"}, json={})
    )

    assert isinstance(error, RetryableError)
    assert error.status == 429 and error.retry_after_s == 12.0


@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
async def test_server_errors_and_408_are_retryable(status: int) -> None:
    error = await failure_of(lambda r: httpx.Response(status, text="down"))

    assert isinstance(error, RetryableError) and error.retryable
    assert error.status == status


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_other_client_errors_are_permanent(status: int) -> None:
    error = await failure_of(
        lambda r: httpx.Response(status, json={"message": "no such thing"})
    )

    assert isinstance(error, PermanentError) and not error.retryable
    assert error.status == status and "no such thing" in str(error)


async def test_a_redirect_is_permanent() -> None:
    error = await failure_of(
        lambda r: httpx.Response(302, headers={"Location": "https://elsewhere.example"})
    )

    assert isinstance(error, PermanentError)


async def test_connection_failure_is_retryable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    error = await failure_of(refuse)

    assert isinstance(error, RetryableError) and error.status is None
    assert isinstance(error.__cause__, httpx.ConnectError)


async def test_timeout_is_retryable() -> None:
    def time_out(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    error = await failure_of(time_out)

    assert isinstance(error, RetryableError) and "did not answer" in str(error)


async def test_an_oversized_answer_is_refused() -> None:
    error = await failure_of(
        lambda r: httpx.Response(200, content=b"x" * 5000), max_response_bytes=1024
    )

    assert isinstance(error, PermanentError) and "more than 1024 bytes" in str(error)


async def test_a_body_that_is_not_json_is_permanent() -> None:
    async with vendor_http(lambda r: httpx.Response(200, text="<html>")) as http:
        answer = await http.request("GET", "/things")

    with pytest.raises(PermanentError, match="not JSON"):
        answer.json()


async def test_secrets_echoed_by_the_vendor_are_scrubbed() -> None:
    error = await failure_of(
        lambda r: httpx.Response(401, json={"message": f"bad token {SECRET}"})
    )

    assert SECRET not in str(error) and SECRET not in repr(error)
    assert "[redacted]" in str(error)


def test_scrubbing_caps_the_length() -> None:
    assert len(scrub_secrets("x" * 2000, [])) == 500


async def test_limiter_refuses_calls_during_retry_after() -> None:
    calls: list[httpx.Request] = []

    def rate_limited(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, headers={"Retry-After": "60"})

    async with vendor_http(rate_limited) as http:
        for _ in range(3):
            with pytest.raises(RetryableError):
                await http.request("GET", "/things")

    assert len(calls) == 1


async def test_limiter_bounds_concurrency() -> None:
    limiter = CallLimiter("acme", max_concurrency=2, rate_per_s=1000)
    running = 0
    peak = 0

    async def call() -> None:
        nonlocal running, peak
        async with limiter.slot():
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1

    await asyncio.gather(*(call() for _ in range(8)))

    assert peak == 2


async def test_token_bucket_spaces_calls_beyond_the_burst() -> None:
    bucket = TokenBucket(rate_per_s=50, burst=2)
    loop = asyncio.get_running_loop()
    started = loop.time()

    for _ in range(6):
        await bucket.acquire()

    # Two from the burst, then four at 50 a second: at least 80 ms.
    assert loop.time() - started >= 0.075
