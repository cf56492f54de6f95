"""How hard one connector may press on its vendor: concurrency, rate and back-off.

Every connector owns one `CallLimiter` and wraps each vendor call in
`async with limiter.slot():`. The limiter keeps three promises:

- at most `max_concurrency` calls are in flight at once;
- calls start at no more than `rate_per_s` a second on average, with bursts of up
  to `burst` calls (a token bucket);
- after a vendor answered 429 with Retry-After, calls are refused with
  `RetryableError` until that time has passed, instead of being sent to be
  rejected again. Nothing waits in memory for the vendor: the runner reschedules
  the step through the delay topics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from services.actions.errors import RetryableError

logger = logging.getLogger(__name__)


class TokenBucket:
    """Admits `rate_per_s` acquisitions a second on average, `burst` at once."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        if rate_per_s <= 0:
            raise ValueError(f"expected a positive rate_per_s, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"expected burst of at least 1, got {burst!r}")
        self._rate_per_s = rate_per_s
        self._burst = burst
        self._tokens = float(burst)
        self._updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Take one token, waiting until one has accumulated if none is left."""
        async with self._lock:
            self._refill()
            if self._tokens < 1:
                wait_s = (1 - self._tokens) / self._rate_per_s
                await asyncio.sleep(wait_s)
                self._refill()
            self._tokens -= 1

    def _refill(self) -> None:
        now = time.monotonic()
        elapsed_s = now - self._updated
        self._tokens = min(self._burst, self._tokens + elapsed_s * self._rate_per_s)
        self._updated = now


class CallLimiter:
    """Bounds one connector's calls: how many at once, how often, and when not.

    `slot()` waits for a free slot and a rate token, and raises RetryableError
    at once while a vendor's Retry-After is pending (see `back_off`).
    """

    def __init__(
        self,
        vendor: str,
        *,
        max_concurrency: int,
        rate_per_s: float,
        burst: int | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise ValueError(
                f"expected max_concurrency of at least 1, got {max_concurrency!r}"
            )
        self.vendor = vendor
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._bucket = TokenBucket(
            rate_per_s=rate_per_s, burst=burst or max(1, round(rate_per_s))
        )
        self._blocked_until = 0.0

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one call slot for the duration of the `async with` block.

        Waits for concurrency and rate; raises RetryableError (with the time
        left) while the vendor asked us to back off.
        """
        self._refuse_while_backing_off()
        async with self._semaphore:
            self._refuse_while_backing_off()
            await self._bucket.acquire()
            yield

    def back_off(self, retry_after_s: float) -> None:
        """Refuse calls for `retry_after_s` seconds, as the vendor asked."""
        until = time.monotonic() + max(0.0, retry_after_s)
        if until > self._blocked_until:
            self._blocked_until = until
            logger.warning(
                "%s asked to back off for %.1fs; refusing calls until then",
                self.vendor,
                retry_after_s,
            )

    def remaining_back_off_s(self) -> float:
        """Seconds until calls are admitted again; 0 when they are now."""
        return max(0.0, self._blocked_until - time.monotonic())

    def _refuse_while_backing_off(self) -> None:
        remaining_s = self.remaining_back_off_s()
        if remaining_s > 0:
            raise RetryableError(
                f"{self.vendor} is rate limiting us; not calling it for another "
                f"{remaining_s:.1f}s",
                vendor=self.vendor,
                status=429,
                retry_after_s=remaining_s,
            )
