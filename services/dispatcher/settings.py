"""Settings of the dispatcher and its delay relays (prefix `SIGNALFLOW_DISPATCHER_`).

The dispatcher process runs the relays of the tiers named in `relays` beside its
own consumer (`all` by default, as the design has it). Set `relays=none` and run
`signalflow run relay --tier <label>` processes to scale the relays on their own.
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signalflow.topics import DELAY_TIERS, DelayTier

_TIERS = {tier.label: tier for tier in DELAY_TIERS}


class DispatcherSettings(BaseSettings):
    """What the dispatcher and the relays read from the environment."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALFLOW_DISPATCHER_", extra="ignore"
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8003, ge=0, le=65535)
    relay_port: int = Field(
        default=8030,
        ge=0,
        le=65535,
        description="Health port of a `signalflow run relay` process.",
    )
    relays: str = Field(
        default="all",
        description="Tiers whose relays the dispatcher process runs: 'all', 'none' "
        "or labels such as '1s,10s'.",
    )
    instance_id: str | None = Field(
        default=None,
        description="Static consumer-group membership (group.instance.id): a replica "
        "restarted with the same id takes its partitions back without waiting for "
        "the session timeout. Each relay tier appends its label.",
    )
    batch_size: int = Field(default=500, ge=1)
    retry_base_ms: int = Field(
        default=1_000, ge=1, description="Backoff ceiling of the first retry."
    )
    retry_cap_ms: int = Field(
        default=300_000, ge=1, description="Largest backoff ceiling of any retry."
    )
    definition_wait_s: float = Field(
        default=5.0,
        ge=0,
        description="How long a record naming a workflow version the definition "
        "log has not read yet waits for it before going to dead-letters.",
    )
    relay_batch_size: int = Field(default=1_000, ge=1)
    relay_poll_ms: int = Field(
        default=20,
        ge=1,
        description="Longest a relay waits to fill a batch, which bounds how late "
        "a record that trickles in is forwarded; a head due sooner than this is "
        "waited for in place instead of pausing its partition.",
    )
    relay_fetch_wait_ms: int = Field(
        default=25,
        ge=1,
        description="Longest a relay's fetch waits at the broker; bounds how late a "
        "resumed partition's first record arrives.",
    )
    relay_prefetch_kbytes: int = Field(
        default=16_384,
        ge=64,
        description="Most a relay's consumer buffers ahead of what it handled. "
        "Paused partitions are not fetched at all, so this bounds the memory a "
        "draining backlog takes, not one that grows with pending waits.",
    )

    @field_validator("relays")
    @classmethod
    def _known_tiers(cls, value: str) -> str:
        parse_tiers(value)
        return value

    def relay_tiers(self) -> list[DelayTier]:
        """The tiers whose relays the dispatcher process runs."""
        return parse_tiers(self.relays)


def parse_tiers(value: str) -> list[DelayTier]:
    """Parse 'all', 'none' or comma-separated tier labels into tiers, in tier order.

    Raises ValueError naming an unknown label.
    """
    text = value.strip().lower()
    if text == "all":
        return list(DELAY_TIERS)
    if text in ("", "none"):
        return []
    labels = [label.strip() for label in text.split(",") if label.strip()]
    unknown = [label for label in labels if label not in _TIERS]
    if unknown:
        raise ValueError(
            f"expected 'all', 'none' or tier labels from {sorted(_TIERS)!r}, "
            f"got {value!r}"
        )
    return [tier for tier in DELAY_TIERS if tier.label in labels]
