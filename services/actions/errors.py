"""Why a side effect failed, and whether trying again can help.

One hierarchy for every connector::

    ActionError                  a side effect did not happen (or may not have)
     +-- RetryableError          try again later: a timeout, a connection failure,
     |                           429 (with the vendor's Retry-After, if it sent one)
     |                           or a 5xx answer
     +-- PermanentError          trying again cannot help: a 4xx answer other than
                                 429 and 408, or data the vendor or we rejected

The class attribute `retryable` carries the decision, so a runner needs no
`isinstance` chain: `if error.retryable: schedule a retry`.

Third-party exceptions (httpx, slack_sdk, simple_salesforce, requests, aiosmtplib)
are translated at the connector edge and chained with `raise ... from exc`, so the
original stays available for debugging while callers only ever see this hierarchy.

Messages never contain secrets: connectors build them from the vendor's error code
and text, never from headers, and pass them through `scrub_secrets` with the tokens
and passwords they hold.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

MAX_MESSAGE_CHARS = 500
REDACTED = "[redacted]"


class ActionError(Exception):
    """A side effect failed; `retryable` says whether another attempt may succeed.

    `vendor` names the service that failed ("slack", "salesforce", ...) and
    `status` is its HTTP status or SMTP reply code, when there was an answer.
    """

    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str, *, vendor: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.vendor = vendor
        self.status = status

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, vendor={self.vendor!r}, "
            f"status={self.status!r})"
        )


class RetryableError(ActionError):
    """A failure that may pass: time out, connection lost, rate limited, 5xx.

    `retry_after_s` is how long the vendor asked us to wait (its Retry-After
    header), or None when it did not say.
    """

    retryable: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        vendor: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, vendor=vendor, status=status)
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, vendor={self.vendor!r}, "
            f"status={self.status!r}, retry_after_s={self.retry_after_s!r})"
        )


class PermanentError(ActionError):
    """A failure that repeats on every attempt: rejected input, missing records,
    refused credentials, or an answer we cannot understand."""

    retryable: ClassVar[bool] = False


def scrub_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """Return `text` with every non-empty secret replaced and its length capped.

    Vendors sometimes echo what they were sent; this keeps tokens and passwords
    out of error messages, logs and step results.
    """
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def error_for_status(
    vendor: str,
    status: int,
    detail: str,
    *,
    retry_after_s: float | None = None,
) -> ActionError:
    """Classify a vendor's non-success HTTP answer into the hierarchy.

    429, 408 and every 5xx are retryable (429 keeps `retry_after_s`); every other
    status is permanent. `detail` should already be scrubbed of secrets.
    """
    message = f"{vendor} answered HTTP {status}: {detail}"
    if status == 429:
        return RetryableError(
            message, vendor=vendor, status=status, retry_after_s=retry_after_s
        )
    if status == 408 or status >= 500:
        return RetryableError(
            message, vendor=vendor, status=status, retry_after_s=retry_after_s
        )
    return PermanentError(message, vendor=vendor, status=status)
