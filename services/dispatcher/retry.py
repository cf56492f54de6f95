"""The retry policy: exponential backoff with full jitter, and what a step is called.

A retryable failure of attempt `n` waits a random time between zero and
`min(cap, base * 2**(n-1))` ("full jitter": replicas that failed together do not
retry together), but never less than the target's own `Retry-After`.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

_SHARED = random.Random()


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of retryable step failures.

    Args:
        base_ms: the backoff ceiling after the first failed attempt.
        cap_ms: the largest ceiling, however many attempts failed.
    """

    base_ms: int
    cap_ms: int

    def __post_init__(self) -> None:
        if self.base_ms < 1 or self.cap_ms < self.base_ms:
            raise ValueError(
                "expected 1 <= base_ms <= cap_ms, got "
                f"base_ms={self.base_ms!r}, cap_ms={self.cap_ms!r}"
            )

    def ceiling_ms(self, failed_attempt: int) -> int:
        """The longest backoff after attempt `failed_attempt` (from 1) failed."""
        if failed_attempt < 1:
            raise ValueError(f"expected an attempt from 1, got {failed_attempt!r}")
        # Past ~60 doublings any base exceeds any cap; stop before huge integers.
        doublings = min(failed_attempt - 1, 62)
        return min(self.cap_ms, self.base_ms << doublings)

    def backoff_ms(
        self,
        failed_attempt: int,
        *,
        retry_after_ms: int | None = None,
        rng: random.Random | None = None,
    ) -> int:
        """How long to wait before the attempt after `failed_attempt`.

        A uniform draw from `[0, ceiling_ms(failed_attempt)]`, raised to
        `retry_after_ms` when the target asked for a longer wait.
        """
        draw = (rng or _SHARED).randint(0, self.ceiling_ms(failed_attempt))
        if retry_after_ms is not None and retry_after_ms > draw:
            return retry_after_ms
        return draw


def idempotency_key(run_id: str, step_id: str) -> str:
    """The key every attempt of step `step_id` of run `run_id` carries.

    Derived from the two ids alone, so a redelivered enrollment or result, a retry
    and a replica that never saw the run all compute the same key. 32 hex digits
    of SHA-256: short, opaque and safe in any target's idempotency header.
    """
    digest = hashlib.sha256(f"{run_id}\x1f{step_id}".encode())
    return digest.hexdigest()[:32]
