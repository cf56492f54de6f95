"""Settings every connector shares; each vendor adds its own under its prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConnectorSettings(BaseSettings):
    """Timeouts and limits; subclasses set `env_prefix` to `SIGNALFLOW_<VENDOR>_`."""

    model_config = SettingsConfigDict(extra="ignore")

    timeout_s: float = Field(
        default=10.0, gt=0, description="Longest wait for one vendor call, end to end."
    )
    max_concurrency: int = Field(
        default=4, ge=1, description="Calls in flight at once from one process."
    )
    rate_per_s: float = Field(
        default=10.0, gt=0, description="Average calls a second from one process."
    )
    max_response_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        description="Larger answers are refused rather than read into memory.",
    )
