"""Settings of the action services.

- `ActionSettings` (`SIGNALFLOW_ACTIONS_*`): health port, concurrency, idempotency.
- `CrmExportSettings` (`SIGNALFLOW_CRM_*`): the global CRM export settings a
  workflow's CRM step follows unless it overrides them.
- `WebhookSettings` (`SIGNALFLOW_WEBHOOK_*`): the address allowlist, signing
  secrets by name, limits.
- `SequenceSettings` (`SIGNALFLOW_SEQUENCE_*`): the custom fields that receive
  the AI message on each sequencing platform.

Lists may be written comma-separated (`SIGNALFLOW_WEBHOOK_ALLOWLIST=127.0.0.1,::1`)
or as JSON; the signing secrets are a JSON object of name to secret.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from signalflow.topics import ActionType

CommaList = Annotated[list[str], NoDecode]


def _split_list(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class ActionSettings(BaseSettings):
    """How one action service consumes, runs and remembers step commands."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_ACTIONS_", extra="ignore")

    host: str = "127.0.0.1"
    #: Health ports are `base_port` plus the action type's position in `ActionType`,
    #: so every action service of one host gets its own.
    base_port: int = 8010
    max_in_flight: int = Field(
        default=32,
        ge=1,
        description="Commands running at once in one process. More helps only "
        "when targets answer slowly: an HTTP pool's cost per request grows with "
        "its connections, and vendors' rate limits cap the rest.",
    )
    partition_concurrency: int = Field(
        default=8,
        ge=1,
        description="Commands of one partition running at once; the partition is "
        "paused while this many are unfinished.",
    )
    poll_timeout_s: float = Field(default=0.1, gt=0)
    result_ttl_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long a performed step's result is remembered for "
        "redeliveries.",
    )
    claim_ttl_s: float = Field(
        default=120.0,
        gt=0,
        description="Life of an 'in progress' claim; longer than any action takes.",
    )
    claim_wait_s: float = Field(
        default=30.0,
        ge=0,
        description="How long a replica waits for another one that is performing "
        "the same step before reporting a retryable error.",
    )
    revoke_drain_s: float = Field(
        default=20.0,
        ge=0,
        description="How long a revoked partition's running commands may finish "
        "before the partition is handed over.",
    )
    unavailable_users: CommaList = Field(
        default=[],
        description="Users round robin skips (out of office, left); the Redis set "
        "`signalflow:<prefix>actions:unavailable-users` adds to it at run time.",
    )

    _split = field_validator("unavailable_users", mode="before")(_split_list)

    def port_for(self, action: ActionType) -> int:
        return self.base_port + list(ActionType).index(action)


class CrmExportSettings(BaseSettings):
    """The global CRM export settings; a workflow's CRM step may override each."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_CRM_", extra="ignore")

    target: Literal["salesforce", "hubspot"] = "salesforce"
    create_as: Literal["contact", "lead"] = "contact"
    update_existing: bool = True
    create_account_if_missing: bool = False


class WebhookSettings(BaseSettings):
    """What webhook steps may call and how they sign."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_WEBHOOK_", extra="ignore")

    allowlist: CommaList = Field(
        default=[],
        description="Addresses or networks webhooks may call although they are "
        "loopback, private or link-local (e.g. 127.0.0.1 for a local demo).",
    )
    secrets: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Signing secrets by the name a webhook step refers to.",
    )
    max_response_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_timeout_s: float = Field(
        default=30.0, gt=0, description="Upper bound on a step's own timeout."
    )
    max_connections: int = Field(default=100, ge=1)
    per_host_concurrency: int = Field(
        default=32, ge=1, description="Requests in flight to one host at once."
    )
    per_host_rate_per_s: float = Field(
        default=200.0, gt=0, description="Average requests a second to one host."
    )
    signature_header: str = "X-Signalflow-Signature"
    timestamp_header: str = "X-Signalflow-Timestamp"

    _split = field_validator("allowlist", mode="before")(_split_list)


class SequenceSettings(BaseSettings):
    """Where a sequence step puts the run's AI message on each platform.

    An AI message step's subject and body go into the prospect's custom fields,
    where the platform's templates read them (`SIGNALFLOW_SEQUENCE_*`).
    """

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_SEQUENCE_", extra="ignore")

    outreach_subject_field: str = "custom1"
    outreach_body_field: str = "custom2"
    salesloft_subject_field: str = "ai_subject"
    salesloft_body_field: str = "ai_body"
