"""Salesloft through its REST API (v2) with httpx: people and cadences.

Implements `SequencePlatform`, so `add_to_sequence(SalesloftConnector, ...)`
adds a person to a cadence the way the sequence action needs. Custom fields go
to the person's `custom_fields`. Authentication is an API key
(`SIGNALFLOW_SALESLOFT_API_KEY`) sent as a bearer token.
"""

from __future__ import annotations

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

VENDOR = "salesloft"
MAX_USER_PAGES = 20


class SalesloftSettings(ConnectorSettings):
    """The Salesloft API and key (`SIGNALFLOW_SALESLOFT_*`)."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALFLOW_SALESLOFT_", extra="ignore"
    )

    base_url: str = Field(
        default=f"http://{demo.DEMO_HOST}:{demo.SALESLOFT.port}/v2",
        description="https://api.salesloft.com/v2 for the real service.",
    )
    api_key: SecretStr = Field(default=SecretStr(demo.SALESLOFT.token))


class SalesloftConnector(HttpConnector):
    """People and cadences of one Salesloft team (a `SequencePlatform`)."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: SalesloftSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or SalesloftSettings()
        super().__init__(self.settings, transport=transport)

    def base_url(self) -> str:
        return self.settings.base_url.rstrip("/") + "/"

    def auth_headers(self) -> dict[str, str]:
        key = self.settings.api_key.get_secret_value()
        return {"Authorization": f"Bearer {key}", "Accept": "application/json"}

    def secrets(self) -> list[str]:
        return [self.settings.api_key.get_secret_value()]

    @staticmethod
    def describe_error(document: Any) -> str | None:
        if not isinstance(document, dict):
            return None
        errors = document.get("errors")
        if isinstance(errors, dict) and errors:
            field, messages = next(iter(errors.items()))
            text = messages[0] if isinstance(messages, list) and messages else messages
            return f"{field} {text}"
        error = document.get("error")
        return str(error) if error else None

    async def add_to_sequence(self, request: EnrollmentRequest) -> EnrollmentOutcome:
        """Add a person to a cadence as the request says (see `sequencing`)."""
        return await add_to_sequence(self, request)

    # -- people ------------------------------------------------------------------------

    async def find_person(self, email: str) -> SepPerson | None:
        """The person with this e-mail address, or None."""
        rows = await self._list("people", {"email_addresses[]": email})
        return _person(rows[0]) if rows else None

    async def create_person(
        self, email: str, fields: Mapping[str, Any], *, owner_id: str | None
    ) -> SepPerson:
        """Create a person; `fields` are person fields (first_name, title, ...)."""
        body: dict[str, Any] = {**fields, "email_address": email}
        if owner_id is not None:
            body["owner_id"] = int(owner_id)
        answer = await self.http.request("POST", "people", json_body=body)
        return _person(answer.json_object()["data"])

    async def set_owner(self, person_id: str, owner_id: str) -> None:
        """Make the user the person's owner."""
        await self.http.request(
            "PUT", f"people/{person_id}", json_body={"owner_id": int(owner_id)}
        )

    async def write_custom_fields(
        self, person_id: str, fields: Mapping[str, str]
    ) -> None:
        """Merge values into the person's custom fields."""
        await self.http.request(
            "PUT", f"people/{person_id}", json_body={"custom_fields": dict(fields)}
        )

    async def find_user_id(self, email: str) -> str | None:
        """The id of the Salesloft user with this e-mail address, or None."""
        wanted = email.lower()
        for page in range(1, MAX_USER_PAGES + 1):
            answer = await self.http.request(
                "GET", "users", params={"per_page": 100, "page": page}
            )
            document = answer.json_object()
            for user in document.get("data") or []:
                if str(user.get("email", "")).lower() == wanted:
                    return str(user["id"])
            if not (document.get("metadata") or {}).get("paging", {}).get("next_page"):
                return None
        return None

    # -- cadences ----------------------------------------------------------------------

    async def find_sequence(self, id_or_name: str) -> SepSequence | None:
        """The cadence with this id, else with this exact name, or None."""
        params = {"ids[]": id_or_name} if id_or_name.isdigit() else {"name": id_or_name}
        rows = await self._list("cadences", params)
        return SepSequence(str(rows[0]["id"]), str(rows[0]["name"])) if rows else None

    async def active_memberships(self, person_id: str) -> list[SepMembership]:
        """The person's memberships of cadences they are currently on."""
        rows = await self._list(
            "cadence_memberships",
            {"person_id": person_id, "currently_on_cadence": "true"},
        )
        return [_membership(row) for row in rows]

    async def remove_membership(self, membership: SepMembership) -> None:
        """Delete the membership (the person leaves the cadence)."""
        await self.http.request("DELETE", f"cadence_memberships/{membership.id}")

    async def enroll(
        self, person: SepPerson, sequence: SepSequence, *, owner_id: str | None
    ) -> SepMembership:
        """Add the person to the cadence, owned by `owner_id` when given."""
        params = {"person_id": person.id, "cadence_id": sequence.id}
        if owner_id is not None:
            params["user_id"] = owner_id
        answer = await self.http.request("POST", "cadence_memberships", params=params)
        return _membership(answer.json_object()["data"])

    async def _list(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        answer = await self.http.request("GET", path, params=params)
        data = answer.json_object().get("data")
        if not isinstance(data, list):
            raise PermanentError(
                f"expected a list of {path} from salesloft, got {str(data)[:80]!r}",
                vendor=VENDOR,
            )
        return data


def _person(row: dict[str, Any]) -> SepPerson:
    owner = row.get("owner") or {}
    return SepPerson(
        id=str(row["id"]),
        email=str(row.get("email_address", "")),
        owner_id=str(owner["id"]) if owner.get("id") is not None else None,
        fields={k: v for k, v in row.items() if k not in ("id", "owner")},
    )


def _membership(row: dict[str, Any]) -> SepMembership:
    return SepMembership(
        id=str(row["id"]),
        sequence_id=str((row.get("cadence") or {}).get("id")),
        person_id=str((row.get("person") or {}).get("id")),
        state=str(row.get("current_state")),
    )
