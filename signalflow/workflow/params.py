"""Typed parameters of each step kind, and the people a step can address.

Every parameter model forbids unknown fields and explains each rule it enforces
in a sentence that names the bad value.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signalflow.workflow.errors import user_error
from signalflow.workflow.template_fields import (
    JsonTemplate,
    MarkupTemplate,
    PlainTemplate,
)
from signalflow.workflow.variables import OUTPUT_NAME_PATTERN, OUTPUT_NAMES

MAX_DELAY = timedelta(days=90)
_PART_DAYS = 1_000_000
CRM_FIELD_PATTERN = r"^[A-Za-z][A-Za-z0-9_.]{0,99}$"
SECRET_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
RESPONSE_PATH_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")

CrmFieldName = Annotated[str, Field(pattern=CRM_FIELD_PATTERN)]


class Params(BaseModel):
    """Base of every step's parameters."""

    # `serialize_by_alias` writes a branch's `else_` as `else`, as users write it.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )


# --- people a step can address ----------------------------------------------------


class RecordOwner(Params):
    """The owner of the person's contact or lead record (or another owner field)."""

    kind: Literal["record_owner"] = "record_owner"
    field: CrmFieldName | None = None


class PastRecordOwner(Params):
    """Whoever owned the person's record before the current owner."""

    kind: Literal["past_record_owner"] = "past_record_owner"


class AccountOwner(Params):
    """The owner of the account record (or another owner field on the account)."""

    kind: Literal["account_owner"] = "account_owner"
    field: CrmFieldName | None = None


class PastAccountOwner(Params):
    """Whoever owned the account before the current owner."""

    kind: Literal["past_account_owner"] = "past_account_owner"


class SpecificUser(Params):
    """One named user, by email address or CRM user id."""

    kind: Literal["specific_user"] = "specific_user"
    user: str = Field(min_length=1, max_length=200)


class SlackChannel(Params):
    """A Slack channel, by name (`#deals` or `deals`) or id."""

    kind: Literal["slack_channel"] = "slack_channel"
    channel: str = Field(pattern=r"^#?[A-Za-z0-9][A-Za-z0-9_\-]{0,79}$")


class SlackGroup(Params):
    """A Slack user group, by handle or id; the message mentions it."""

    kind: Literal["slack_group"] = "slack_group"
    group: str = Field(pattern=r"^@?[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}$")


Recipient = Annotated[
    RecordOwner
    | PastRecordOwner
    | AccountOwner
    | PastAccountOwner
    | SpecificUser
    | SlackChannel
    | SlackGroup,
    Field(discriminator="kind"),
]
PersonRecipient = Annotated[
    RecordOwner | PastRecordOwner | AccountOwner | PastAccountOwner | SpecificUser,
    Field(discriminator="kind"),
]
OwnerChoice = Annotated[
    RecordOwner | AccountOwner | SpecificUser, Field(discriminator="kind")
]


# --- CRM --------------------------------------------------------------------------


class CrmUpsertParams(Params):
    """Create or update the person in the CRM.

    Every setting left out (None) follows the global CRM export settings.
    """

    target: Literal["salesforce", "hubspot"] | None = None
    create_as: Literal["contact", "lead"] | None = None
    update_existing: bool | None = None
    create_account_if_missing: bool | None = None
    fields: dict[CrmFieldName, PlainTemplate] = Field(default_factory=dict)


class CrmUpdateParams(Params):
    """Write fields of the person's record (or of the account's)."""

    record: Literal["contact_or_lead", "account"] = "contact_or_lead"
    fields: dict[CrmFieldName, PlainTemplate]

    @field_validator("fields")
    @classmethod
    def _some_fields(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise user_error("Choose at least one field to update.")
        return value


# --- ownership --------------------------------------------------------------------


class RecordOwnerField(Params):
    """Take the owner from a user field of the person's record (e.g. an SDR owner)."""

    kind: Literal["record_owner_field"] = "record_owner_field"
    field: CrmFieldName


class AccountOwnerField(Params):
    """Take the owner from a user field of the account (e.g. the account's SDR)."""

    kind: Literal["account_owner_field"] = "account_owner_field"
    field: CrmFieldName


class WeightedUser(Params):
    """A round-robin member; a weight of 2 receives twice as many as a weight of 1."""

    user: str = Field(min_length=1, max_length=200)
    weight: int = Field(default=1, validate_default=True)

    @field_validator("weight")
    @classmethod
    def _weight_positive(cls, value: int) -> int:
        if not 1 <= value <= 100:
            raise user_error(
                "A round-robin weight is a whole number from 1 to 100; got {value!r}.",
                value=value,
            )
        return value


class RoundRobin(Params):
    """Rotate through users, in proportion to their weights."""

    kind: Literal["round_robin"] = "round_robin"
    users: list[WeightedUser]

    @field_validator("users")
    @classmethod
    def _distinct_users(cls, value: list[WeightedUser]) -> list[WeightedUser]:
        if not value:
            raise user_error("Round robin needs at least one user.")
        names = [member.user for member in value]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise user_error(
                "Each user may appear once in a round robin; repeated: {users}.",
                users=", ".join(duplicates),
            )
        return value


class AssignOwnerParams(Params):
    """Choose an owner and write it to `write_field` of the person's record."""

    method: Annotated[
        RecordOwnerField | AccountOwnerField | SpecificUser | RoundRobin,
        Field(discriminator="kind"),
    ]
    write_field: CrmFieldName = "OwnerId"
    only_if_unowned: bool = False


# --- notifications ----------------------------------------------------------------


class _NotificationParams(Params):
    message: MarkupTemplate = Field(min_length=1, max_length=20_000)
    include_email_template: bool = False
    email_template_subject: MarkupTemplate | None = None
    email_template_body: MarkupTemplate | None = None

    @model_validator(mode="after")
    def _email_template_complete(self) -> _NotificationParams:
        if self.include_email_template and not (
            self.email_template_subject and self.email_template_body
        ):
            raise user_error(
                "A one-click email template needs a subject and a body, such as "
                "$AI Subject and $AI Body."
            )
        return self


class SlackParams(_NotificationParams):
    """Post a message to owners, users, channels or groups in Slack."""

    recipients: list[Recipient]

    @field_validator("recipients")
    @classmethod
    def _someone(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise user_error("Choose at least one recipient for the Slack message.")
        return value


class EmailParams(_NotificationParams):
    """Email a notification to owners or users.

    Email goes to people: Slack channels and groups are for the Slack step.
    """

    recipients: list[PersonRecipient]
    subject: MarkupTemplate | None = Field(default=None, validate_default=True)

    @field_validator("recipients")
    @classmethod
    def _someone(cls, value: list[Any]) -> list[Any]:
        if not value:
            raise user_error("Choose at least one recipient for the email.")
        return value

    @field_validator("subject")
    @classmethod
    def _has_subject(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            raise user_error("Email notifications need a subject.")
        return value


# --- tasks ------------------------------------------------------------------------


class TaskParams(Params):
    """Create a CRM task for an owner."""

    subject: MarkupTemplate = Field(min_length=1, max_length=255)
    description: MarkupTemplate = ""
    static_text: str = Field(default="", max_length=5_000)
    due_in_days: int = Field(default=0, validate_default=True)
    priority: Literal["low", "normal", "high"] = "normal"
    assign_to: OwnerChoice = Field(default_factory=RecordOwner)
    fields: dict[CrmFieldName, PlainTemplate] = Field(default_factory=dict)

    @field_validator("due_in_days")
    @classmethod
    def _due_range(cls, value: int) -> int:
        if not 0 <= value <= 365:
            raise user_error(
                "A task is due today (0) or within 365 days; got {value!r}.",
                value=value,
            )
        return value


# --- timing -----------------------------------------------------------------------


class DelayParams(Params):
    """Wait before the next step; at least one second, at most 90 days in all."""

    # Each part is also bounded on its own, far above MAX_DELAY, so that no sum of
    # them overflows timedelta before the total is checked against MAX_DELAY.
    days: int = Field(default=0, ge=0, le=_PART_DAYS)
    hours: int = Field(default=0, ge=0, le=_PART_DAYS * 24)
    minutes: int = Field(default=0, ge=0, le=_PART_DAYS * 24 * 60)
    seconds: int = Field(default=0, ge=0, le=_PART_DAYS * 24 * 3600)

    @model_validator(mode="after")
    def _sane_length(self) -> DelayParams:
        length = self.duration()
        if length <= timedelta(0):
            raise user_error("A delay must be longer than zero.")
        if length > MAX_DELAY:
            raise user_error(
                "A delay can be at most {max} days; this one is {given}.",
                max=MAX_DELAY.days,
                given=str(length),
            )
        return self

    def duration(self) -> timedelta:
        """The wait as a `timedelta`."""
        return timedelta(
            days=self.days, hours=self.hours, minutes=self.minutes, seconds=self.seconds
        )


# --- webhook ----------------------------------------------------------------------

HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class WebhookParams(Params):
    """Send the prospect's data to an HTTP endpoint.

    `payload` is a JSON template; `response_fields` names outputs taken from the
    JSON response by dotted path (`{"lead_id": "data.id"}`). With `signing_secret`
    (the name of a secret configured on the action service) the request carries an
    HMAC-SHA256 signature of its body.
    """

    url: PlainTemplate
    method: HttpMethod = "POST"
    headers: dict[str, PlainTemplate] = Field(default_factory=dict)
    query: dict[str, PlainTemplate] = Field(default_factory=dict)
    payload: JsonTemplate | None = None
    signing_secret: str | None = Field(default=None, pattern=SECRET_NAME_PATTERN)
    response_fields: dict[str, str] = Field(default_factory=dict)
    timeout_s: float = Field(default=10.0, gt=0, le=60)

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # Variables may fill the path or query, never the scheme or host.
        head = value.split("$", 1)[0]
        parts = urlsplit(head)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise user_error(
                "A webhook URL starts with http:// or https:// and a host; "
                "got {value!r}.",
                value=value,
            )
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~\-]+$", name):
                raise user_error("{name!r} is not a valid HTTP header name.", name=name)
        return value

    @field_validator("response_fields")
    @classmethod
    def _response_outputs(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            _check_response_field(name, path)
        return value

    @model_validator(mode="after")
    def _payload_needs_body_method(self) -> WebhookParams:
        if self.payload is not None and self.method in ("GET", "DELETE"):
            raise user_error(
                "{method} requests carry no payload; use query key/values or "
                "choose POST, PUT or PATCH.",
                method=self.method,
            )
        return self


def _check_response_field(name: str, path: str) -> None:
    if not OUTPUT_NAME_PATTERN.match(name):
        raise user_error(
            "Response field names are lower-case words such as 'lead_id'; "
            "got {name!r}.",
            name=name,
        )
    if name in OUTPUT_NAMES:
        raise user_error(
            "{name!r} is the name of a built-in output; choose another name.",
            name=name,
        )
    if not RESPONSE_PATH_PATTERN.match(path):
        raise user_error(
            "A response field is a dotted path into the JSON response such as "
            "'data.id'; got {path!r}.",
            path=path,
        )


# --- AI, sequences -----------------------------------------------------------------


class AiMessageParams(Params):
    """Write a personal email (subject and body) from the prospect's signals."""

    provider: Literal["builtin", "openai_compatible"] = "builtin"
    model: str | None = Field(default=None, min_length=1, max_length=100)
    tone: Literal["professional", "friendly", "casual", "direct", "enthusiastic"] = (
        "professional"
    )
    instructions: PlainTemplate = Field(default="", max_length=4_000)
    max_words: int = Field(default=120, ge=20, le=400)


class SequenceParams(Params):
    """Enroll the prospect in an outreach sequence (cadence)."""

    platform: Literal["outreach", "salesloft"]
    sequence_id: str | None = Field(default=None, min_length=1, max_length=100)
    sequence_name: str | None = Field(default=None, min_length=1, max_length=200)
    create_prospect_if_missing: bool = True
    owner: OwnerChoice = Field(default_factory=RecordOwner)
    remove_from_other_sequences: bool = False

    @model_validator(mode="after")
    def _sequence_chosen(self) -> SequenceParams:
        if not (self.sequence_id or self.sequence_name):
            raise user_error("Choose the sequence by its id or its name.")
        return self
