"""Validation of signals and profiles sent as JSON, for integrators without Avro.

The models mirror the newest `signal` and `profile` schemas. Timestamps are ISO 8601
strings with a UTC offset (`2024-05-01T09:30:00Z`) or epoch milliseconds. Valid input
becomes the record `Codec.encode` takes; invalid input raises `InputError` listing
every bad field by its path (`attributes.amount`, `past_owners[2]`). The
`signalflow publish` command and the api's HTTP ingestion both use this module.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from signalflow.contracts.errors import FieldProblem, InputError

SIGNAL_TYPE_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _from_epoch_millis(value: Any) -> Any:
    """Accept epoch milliseconds beside ISO strings (but never a boolean)."""
    if not isinstance(value, int) or isinstance(value, bool):
        return value
    try:
        # Exact integer arithmetic: a float division could lose the last millisecond.
        return _EPOCH + timedelta(milliseconds=value)
    except OverflowError:
        raise ValueError("epoch milliseconds out of the datetime range") from None


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_from_epoch_millis), AfterValidator(_to_utc)
]
Key = Annotated[str, Field(min_length=1)]


def _check_field_value(value: Any) -> Any:
    """A profile field holds what the schema's union allows: null, boolean, long,
    double or string."""
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        if not _LONG_MIN <= value <= _LONG_MAX:
            raise ValueError("integer out of the 64-bit range")
        return value
    raise ValueError("expected null, a boolean, a number or a string")


FieldValue = Annotated[Any, AfterValidator(_check_field_value)]


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=_Input)


class SignalInput(_Input):
    """A signal as JSON: the fields of the `signal` schema, checked."""

    signal_id: Key
    type: str
    scope: Literal["COMPANY", "PERSON"]
    account_key: Key
    person_key: Annotated[str | None, Field(min_length=1, validate_default=True)] = None
    occurred_at: Timestamp
    source: Key
    attributes: dict[str, str] = Field(default_factory=dict)
    source_url: str | None = None

    @field_validator("type")
    @classmethod
    def _type_is_snake_case(cls, kind: str) -> str:
        if not re.fullmatch(SIGNAL_TYPE_PATTERN, kind):
            raise ValueError("expected a snake_case type such as 'job_change'")
        return kind

    @field_validator("person_key")
    @classmethod
    def _person_scope_needs_person(
        cls, person_key: str | None, info: ValidationInfo
    ) -> str | None:
        if info.data.get("scope") == "PERSON" and person_key is None:
            raise ValueError("a PERSON-scoped signal needs the person's key")
        return person_key


class ProfileInput(_Input):
    """A profile as JSON: the fields of the `profile` schema, checked.

    `account_key` may be left out of an ACCOUNT profile; it is then its own key.
    """

    key: Key
    kind: Literal["PERSON", "ACCOUNT"]
    account_key: Annotated[str | None, Field(min_length=1, validate_default=True)] = (
        None
    )
    updated_at: Timestamp
    deleted: bool = False
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")] | None = None
    owner: str | None = None
    past_owners: list[str] = Field(default_factory=list)
    last_activity_at: Timestamp | None = None
    fields: dict[str, FieldValue] = Field(default_factory=dict)

    @field_validator("account_key")
    @classmethod
    def _account_key_fits_kind(
        cls, account_key: str | None, info: ValidationInfo
    ) -> str | None:
        kind, key = info.data.get("kind"), info.data.get("key")
        if kind == "PERSON" and account_key is None:
            raise ValueError("a PERSON profile needs the key of its account")
        if kind == "ACCOUNT" and account_key not in (None, key):
            raise ValueError(f"an ACCOUNT profile is its own account: expected {key!r}")
        return account_key


def validate_signal(data: Any) -> dict[str, Any]:
    """Validate one JSON-decoded signal; return the record for `Codec.encode`.

    Raises InputError naming every bad field.
    """
    model = _validate(SignalInput, "signal", data)
    return model.model_dump()


def validate_profile(data: Any) -> dict[str, Any]:
    """Validate one JSON-decoded profile; return the record for `Codec.encode`.

    Raises InputError naming every bad field.
    """
    model = _validate(ProfileInput, "profile", data)
    record = model.model_dump()
    if record["account_key"] is None:
        record["account_key"] = record["key"]
    return record


def _validate(model: type[M], kind: str, data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError(kind, [_problem(error) for error in exc.errors()]) from None


def _problem(error: Any) -> FieldProblem:
    """Turn one pydantic error into a field path and a message quoting the value."""
    path = ""
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] != "missing":
        message = f"{message} (got {error['input']!r})"
    return FieldProblem(path, message)
