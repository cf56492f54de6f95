"""Outreach through its JSON:API (v2) with httpx: prospects and sequence states.

Implements `SequencePlatform`, so `add_to_sequence(OutreachConnector, ...)`
enrolls a prospect the way the sequence action needs. Enrolling sends from a
mailbox: the mailbox of the enrollment's owner, else `default_mailbox_id`.
Custom fields are the prospect's `custom1` ... `custom150` attributes.
Authentication is an OAuth access token (`SIGNALFLOW_OUTREACH_ACCESS_TOKEN`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.actions.connectors.http import HttpConnector
from services.actions.connectors.sequencing import (
    EnrollmentOutcome,
    EnrollmentRequest,
    SepMembership,
    SepPerson,
    SepSequence,
    add_to_sequence,
)
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import PermanentError
from signalflow.emulators import demo

VENDOR = "outreach"
JSON_API = "application/vnd.api+json"
ACTIVE_STATES = ("active", "pending", "paused")


class OutreachSettings(ConnectorSettings):
    """The Outreach API and token (`SIGNALFLOW_OUTREACH_*`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_OUTREACH_", extra="ignore")

    base_url: str = Field(
        default=f"http://{demo.DEMO_HOST}:{demo.OUTREACH.port}/api/v2",
        description="https://api.outreach.io/api/v2 for the real service.",
    )
    access_token: SecretStr = Field(default=SecretStr(demo.OUTREACH.token))
    default_mailbox_id: str | None = Field(
        default=None, description="Mailbox to send from when the owner has none."
    )


class OutreachConnector(HttpConnector):
    """Prospects and sequences of one Outreach org (a `SequencePlatform`)."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: OutreachSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or OutreachSettings()
        super().__init__(self.settings, transport=transport)

    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/"

    def auth_headers(self) -> dict[str, str]:
        token = self.settings.access_token.get_secret_value()
        return {"Authorization": f"Bearer {token}", "Accept": JSON_API}

    def secrets(self) -> list[str]:
        return [self.settings.access_token.get_secret_value()]

    @staticmethod
    def describe_error(document: Any) -> str | None:
        errors = document.get("errors") if isinstance(document, dict) else None
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            detail = first.get("detail") or first.get("title")
            return f"{first.get('id', 'error')}: {detail}"
        return None

    async def add_to_sequence(self, request: EnrollmentRequest) -> EnrollmentOutcome:
        """Enroll a prospect as the request says (see `sequencing`)."""
        return await add_to_sequence(self, request)

    # -- prospects -------------------------------------------------------------------

    async def find_person(self, email: str) -> SepPerson | None:
        """The prospect with this e-mail address, or None."""
        rows = await self._list("prospects", {"filter[emails]": email})
        return _prospect(rows[0], email) if rows else None

    async def create_person(
        self, email: str, fields: Mapping[str, Any], *, owner_id: str | None
    ) -> SepPerson:
        """Create a prospect; `fields` are prospect attributes (firstName, ...)."""
        data: dict[str, Any] = {
            "type": "prospect",
            "attributes": {**fields, "emails": [email]},
        }
        if owner_id is not None:
            data["relationships"] = {"owner": _linkage("user", owner_id)}
        document = await self._write("POST", "prospects", data)
        return _prospect(document["data"], email)

    async def set_owner(self, person_id: str, owner_id: str) -> None:
        """Make the user the prospect's owner."""
        data = {
            "type": "prospect",
            "id": int(person_id),
            "relationships": {"owner": _linkage("user", owner_id)},
        }
        await self._write("PATCH", f"prospects/{person_id}", data)

    async def write_custom_fields(
        self, person_id: str, fields: Mapping[str, str]
    ) -> None:
        """Write `customN` attributes; any other name is a PermanentError."""
        bad = sorted(name for name in fields if not _is_custom_field(name))
        if bad:
            raise PermanentError(
                f"expected Outreach custom fields custom1..custom150, got {bad[0]!r}",
                vendor=VENDOR,
            )
        data = {"type": "prospect", "id": int(person_id), "attributes": dict(fields)}
        await self._write("PATCH", f"prospects/{person_id}", data)

    async def find_user_id(self, email: str) -> str | None:
        """The id of the Outreach user with this e-mail address, or None."""
        rows = await self._list("users", {"filter[email]": email})
        return str(rows[0]["id"]) if rows else None

    # -- sequences ---------------------------------------------------------------------

    async def find_sequence(self, id_or_name: str) -> SepSequence | None:
        """The sequence with this id, else with this exact name, or None."""
        key = "filter[id]" if id_or_name.isdigit() else "filter[name]"
        rows = await self._list("sequences", {key: id_or_name})
        if not rows:
            return None
        return SepSequence(str(rows[0]["id"]), str(rows[0]["attributes"].get("name")))

    async def active_memberships(self, person_id: str) -> list[SepMembership]:
        """The prospect's sequence states that are active, pending or paused."""
        rows = await self._list(
            "sequenceStates",
            {
                "filter[prospect][id]": person_id,
                "filter[state]": ",".join(ACTIVE_STATES),
            },
        )
        return [_state(row) for row in rows]

    async def remove_membership(self, membership: SepMembership) -> None:
        """Finish the sequence state (the prospect leaves the sequence)."""
        await self.http.request(
            "POST", f"sequenceStates/{membership.id}/actions/finish"
        )

    async def enroll(
        self, person: SepPerson, sequence: SepSequence, *, owner_id: str | None
    ) -> SepMembership:
        """Create a sequence state, sending from the owner's mailbox."""
        mailbox_id = await self._mailbox_for(owner_id)
        data = {
            "type": "sequenceState",
            "relationships": {
                "prospect": _linkage("prospect", person.id),
                "sequence": _linkage("sequence", sequence.id),
                "mailbox": _linkage("mailbox", mailbox_id),
            },
        }
        document = await self._write("POST", "sequenceStates", data)
        return _state(document["data"])

    async def _mailbox_for(self, owner_id: str | None) -> str:
        if owner_id is not None:
            rows = await self._list("mailboxes", {"filter[user][id]": owner_id})
            if rows:
                return str(rows[0]["id"])
        if self.settings.default_mailbox_id is not None:
            return self.settings.default_mailbox_id
        raise PermanentError(
            f"expected a mailbox for user {owner_id!r} or "
            "SIGNALFLOW_OUTREACH_DEFAULT_MAILBOX_ID, found neither",
            vendor=VENDOR,
        )

    # -- JSON:API plumbing -------------------------------------------------------------

    async def _list(self, plural: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        answer = await self.http.request("GET", plural, params=filters)
        data = answer.json_object().get("data")
        if not isinstance(data, list):
            raise PermanentError(
                f"expected a list of {plural} from outreach, got {str(data)[:80]!r}",
                vendor=VENDOR,
            )
        return data

    async def _write(
        self, method: str, path: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        answer = await self.http.request(
            method,
            path,
            content=json.dumps({"data": data}).encode(),
            headers={"Content-Type": JSON_API},
        )
        return answer.json_object()


def _linkage(resource_type: str, resource_id: str) -> dict[str, Any]:
    return {"data": {"type": resource_type, "id": int(resource_id)}}


def _prospect(row: dict[str, Any], email: str) -> SepPerson:
    owner = ((row.get("relationships") or {}).get("owner") or {}).get("data")
    return SepPerson(
        id=str(row["id"]),
        email=email,
        owner_id=str(owner["id"]) if owner else None,
        fields=dict(row.get("attributes") or {}),
    )


def _state(row: dict[str, Any]) -> SepMembership:
    relationships = row.get("relationships") or {}
    sequence = (relationships.get("sequence") or {}).get("data") or {}
    prospect = (relationships.get("prospect") or {}).get("data") or {}
    return SepMembership(
        id=str(row["id"]),
        sequence_id=str(sequence.get("id")),
        person_id=str(prospect.get("id")),
        state=str((row.get("attributes") or {}).get("state")),
    )


def _is_custom_field(name: str) -> bool:
    suffix = name.removeprefix("custom")
    return name.startswith("custom") and suffix.isdigit() and 1 <= int(suffix) <= 150
