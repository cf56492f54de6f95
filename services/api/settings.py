"""Settings of the api (environment prefix `SIGNALFLOW_API_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    """How the api listens, who may call it, and how long it waits for others.

    `SIGNALFLOW_API_TOKENS` is a comma-separated list of bearer tokens; every
    route but `/health` requires one of them. With no token configured the api
    refuses every request (it fails closed).
    """

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    tokens: SecretStr = Field(
        default=SecretStr(""),
        description="Comma-separated bearer tokens accepted on every route.",
    )
    preview_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="How long a preview waits for every matcher partition to answer.",
    )
    test_run_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long test and dry-run results are kept in Redis.",
    )
    max_batch_items: int = Field(
        default=1000,
        ge=1,
        description="The most signals or profiles one ingestion request may carry.",
    )
    sse_keepalive_s: float = Field(
        default=15.0,
        gt=0,
        description="How often a quiet event stream sends a keep-alive comment.",
    )

    def token_values(self) -> list[str]:
        """Return the configured tokens, blanks dropped."""
        raw = self.tokens.get_secret_value()
        return [token.strip() for token in raw.split(",") if token.strip()]
