"""The CRM operations the actions need, independent of the CRM.

`SalesforceConnector` and `HubSpotConnector` both satisfy `CrmConnector`, so the
crm-upsert, assign-owner, task and crm-update actions are written once. Field
names inside `fields` are the CRM's own (`LastName` in Salesforce, `lastname` in
HubSpot): a workflow's step maps its context onto the CRM it targets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class CrmRef:
    """Which record: its CRM object type (`Contact`, `contacts`, ...) and id."""

    object_type: str
    id: str


@dataclass(frozen=True)
class CrmRecord:
    """A record as read from the CRM: its reference and the fields fetched."""

    ref: CrmRef
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def owner_id(self) -> str | None:
        """The owning user's id, when the record was read with its owner."""
        for name in ("OwnerId", "hubspot_owner_id"):
            value = self.fields.get(name)
            if value:
                return str(value)
        return None


@dataclass(frozen=True)
class CrmUpsert:
    """The outcome of creating or updating a person."""

    record: CrmRecord
    created: bool


@dataclass(frozen=True)
class CrmUser:
    """A CRM user who can own records."""

    id: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class TaskSpec:
    """A to-do for a rep, tied to a person and/or an account."""

    subject: str
    body: str = ""
    due: date | None = None
    owner_id: str | None = None
    person: CrmRef | None = None
    account: CrmRef | None = None
    priority: Literal["low", "normal", "high"] = "normal"


class CrmConnector(Protocol):
    """What every CRM connector offers; each call raises ActionError on failure."""

    async def find_person(self, email: str) -> CrmRecord | None:
        """The contact (or lead) with this e-mail address, or None."""
        ...

    async def upsert_person(
        self, email: str, fields: dict[str, Any], *, object_type: str | None = None
    ) -> CrmUpsert:
        """Update the person with this e-mail, or create one of `object_type`."""
        ...

    async def find_account_by_domain(self, domain: str) -> CrmRecord | None:
        """The account (company) whose website is on this domain, or None."""
        ...

    async def create_account(self, *, name: str, domain: str) -> CrmRef:
        """Create an account (company) named `name` with its website on
        `domain`."""
        ...

    async def link_person_to_account(self, person: CrmRef, account: CrmRef) -> None:
        """Make `account` the person's account (company)."""
        ...

    async def update_fields(self, ref: CrmRef, fields: dict[str, Any]) -> None:
        """Write fields on a record."""
        ...

    async def create_task(self, task: TaskSpec) -> CrmRef:
        """Create a task and return its reference."""
        ...

    async def get_owner(self, ref: CrmRef) -> CrmUser | None:
        """The user who owns a record, or None when it has no owner."""
        ...

    async def assign_owner(self, ref: CrmRef, owner_id: str) -> None:
        """Make `owner_id` the record's owner."""
        ...

    async def find_user_by_email(self, email: str) -> CrmUser | None:
        """The CRM user with this e-mail address, or None."""
        ...


def normalize_domain(value: str) -> str:
    """`https://www.Acme.com/about` -> `acme.com`; raises ValueError on no host."""
    text = value.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    host = text.split("/", 1)[0].split(":", 1)[0].strip(".")
    if host.startswith("www."):
        host = host[4:]
    if not host or "." not in host:
        raise ValueError(f"expected a domain such as 'acme.com', got {value!r}")
    return host
