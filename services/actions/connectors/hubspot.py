"""HubSpot CRM through its REST API (v3 objects and owners, v4 associations).

People are contacts found by e-mail, accounts are companies found by domain,
owners are HubSpot owners (`hubspot_owner_id`). Authentication is a private
app's access token (`SIGNALFLOW_HUBSPOT_ACCESS_TOKEN`).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, time
from typing import Any, ClassVar

import httpx
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from services.actions.connectors.crm import (
    CrmRecord,
    CrmRef,
    CrmUpsert,
    CrmUser,
    TaskSpec,
    normalize_domain,
)
from services.actions.connectors.http import HttpConnector
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import ActionError, PermanentError
from signalflow.emulators import demo

logger = logging.getLogger(__name__)

VENDOR = "hubspot"
CONTACTS = "contacts"
COMPANIES = "companies"
CONTACT_PROPERTIES = ["email", "firstname", "lastname", "jobtitle", "hubspot_owner_id"]
COMPANY_PROPERTIES = ["name", "domain", "hubspot_owner_id"]
TASK_TO_CONTACT = 204
TASK_TO_COMPANY = 192
PRIORITIES = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH"}
_EXISTING_ID = re.compile(r"Existing ID: (\d+)")


class HubSpotSettings(ConnectorSettings):
    """Where the HubSpot API is and the token for it (`SIGNALFLOW_HUBSPOT_*`)."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_HUBSPOT_", extra="ignore")

    base_url: str = Field(
        default=f"http://{demo.DEMO_HOST}:{demo.HUBSPOT.port}",
        description="https://api.hubapi.com for the real service.",
    )
    access_token: SecretStr = Field(
        default=SecretStr(demo.HUBSPOT.token),
        description="A private app's access token.",
    )


class HubSpotConnector(HttpConnector):
    """The CRM operations on a HubSpot portal (satisfies `CrmConnector`)."""

    vendor: ClassVar[str] = VENDOR

    def __init__(
        self,
        settings: HubSpotSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.settings = settings or HubSpotSettings()
        super().__init__(self.settings, transport=transport)

    def base_url(self) -> str:
        return self.settings.base_url

    def auth_headers(self) -> dict[str, str]:
        token = self.settings.access_token.get_secret_value()
        return {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    def secrets(self) -> list[str]:
        return [self.settings.access_token.get_secret_value()]

    @staticmethod
    def describe_error(document: Any) -> str | None:
        if isinstance(document, dict) and "message" in document:
            return f"{document.get('category', 'ERROR')}: {document['message']}"
        return None

    # -- people ------------------------------------------------------------------

    async def find_person(self, email: str) -> CrmRecord | None:
        """The contact with this e-mail address, or None."""
        rows = await self._search(CONTACTS, "email", email, CONTACT_PROPERTIES, limit=1)
        return _record(CONTACTS, rows[0]) if rows else None

    async def upsert_person(
        self, email: str, fields: dict[str, Any], *, object_type: str | None = None
    ) -> CrmUpsert:
        """Update the contact with this e-mail, or create it.

        A contact created meanwhile by someone else (409 CONFLICT) is updated
        instead. Raises PermanentError for an `object_type` other than contacts
        and for properties HubSpot refuses.
        """
        if object_type not in (None, CONTACTS):
            raise PermanentError(
                f"expected object_type {CONTACTS!r} for HubSpot, got {object_type!r}",
                vendor=VENDOR,
            )
        existing = await self.find_person(email)
        if existing is not None:
            return await self._update_person(existing.ref.id, fields, created=False)
        try:
            answer = await self.http.request(
                "POST",
                f"/crm/v3/objects/{CONTACTS}",
                json_body={"properties": {**fields, "email": email}},
            )
        except ActionError as error:
            conflict = (
                _EXISTING_ID.search(error.message) if error.status == 409 else None
            )
            if conflict is None:
                raise
            return await self._update_person(conflict.group(1), fields, created=False)
        record = _record(CONTACTS, answer.json_object())
        logger.info("created HubSpot contact %s", record.ref.id)
        return CrmUpsert(record, created=True)

    async def _update_person(
        self, contact_id: str, fields: dict[str, Any], *, created: bool
    ) -> CrmUpsert:
        answer = await self.http.request(
            "PATCH",
            f"/crm/v3/objects/{CONTACTS}/{contact_id}",
            json_body={"properties": fields},
        )
        return CrmUpsert(_record(CONTACTS, answer.json_object()), created=created)

    # -- accounts ----------------------------------------------------------------

    async def find_account_by_domain(self, domain: str) -> CrmRecord | None:
        """The company whose domain is `domain` (ignoring scheme and www)."""
        try:
            wanted = normalize_domain(domain)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from exc
        rows = await self._search(
            COMPANIES, "domain", wanted, COMPANY_PROPERTIES, limit=1
        )
        return _record(COMPANIES, rows[0]) if rows else None

    async def create_account(self, *, name: str, domain: str) -> CrmRef:
        """Create a company with this name and domain."""
        answer = await self.http.request(
            "POST",
            f"/crm/v3/objects/{COMPANIES}",
            json_body={"properties": {"name": name, "domain": domain}},
        )
        company_id = str(answer.json_object()["id"])
        logger.info("created HubSpot company %s for %s", company_id, domain)
        return CrmRef(COMPANIES, company_id)

    async def link_person_to_account(self, person: CrmRef, account: CrmRef) -> None:
        """Associate the contact with the company (the default association)."""
        await self.http.request(
            "PUT",
            f"/crm/v4/objects/{person.object_type}/{person.id}/associations/default/"
            f"{account.object_type}/{account.id}",
        )

    # -- fields, tasks, owners ---------------------------------------------------

    async def update_fields(self, ref: CrmRef, fields: dict[str, Any]) -> None:
        """PATCH the object's properties; an empty `fields` does nothing."""
        if not fields:
            return
        await self.http.request(
            "PATCH",
            f"/crm/v3/objects/{ref.object_type}/{ref.id}",
            json_body={"properties": fields},
        )

    async def create_task(self, task: TaskSpec) -> CrmRef:
        """Create a task associated with the contact and/or the company."""
        due = (
            datetime.combine(task.due, time(9), tzinfo=UTC)
            if task.due is not None
            else datetime.now(UTC)
        )
        properties: dict[str, Any] = {
            "hs_timestamp": due.isoformat().replace("+00:00", "Z"),
            "hs_task_subject": task.subject,
            "hs_task_body": task.body,
            "hs_task_status": "NOT_STARTED",
            "hs_task_priority": PRIORITIES[task.priority],
        }
        if task.owner_id is not None:
            properties["hubspot_owner_id"] = task.owner_id
        associations = [
            _association(ref, type_id)
            for ref, type_id in (
                (task.person, TASK_TO_CONTACT),
                (task.account, TASK_TO_COMPANY),
            )
            if ref is not None
        ]
        answer = await self.http.request(
            "POST",
            "/crm/v3/objects/tasks",
            json_body={"properties": properties, "associations": associations},
        )
        return CrmRef("tasks", str(answer.json_object()["id"]))

    async def get_owner(self, ref: CrmRef) -> CrmUser | None:
        """The owner in the object's `hubspot_owner_id`, or None."""
        answer = await self.http.request(
            "GET",
            f"/crm/v3/objects/{ref.object_type}/{ref.id}",
            params={"properties": "hubspot_owner_id"},
        )
        owner_id = answer.json_object().get("properties", {}).get("hubspot_owner_id")
        if not owner_id:
            return None
        owner = await self.http.request("GET", f"/crm/v3/owners/{owner_id}")
        return _owner(owner.json_object())

    async def assign_owner(self, ref: CrmRef, owner_id: str) -> None:
        """Set `hubspot_owner_id`; an unknown owner is a PermanentError."""
        await self.update_fields(ref, {"hubspot_owner_id": owner_id})

    async def find_user_by_email(self, email: str) -> CrmUser | None:
        """The owner with this e-mail address, or None."""
        answer = await self.http.request(
            "GET", "/crm/v3/owners/", params={"email": email, "limit": 1}
        )
        results = answer.json_object().get("results") or []
        return _owner(results[0]) if results else None

    async def _search(
        self,
        object_type: str,
        prop: str,
        value: str,
        properties: list[str],
        *,
        limit: int,
    ) -> list[dict[str, Any]]:
        query = {
            "filterGroups": [
                {"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}
            ],
            "properties": properties,
            "limit": limit,
        }
        answer = await self.http.request(
            "POST", f"/crm/v3/objects/{object_type}/search", json_body=query
        )
        results: list[dict[str, Any]] = answer.json_object().get("results") or []
        return results


def _record(object_type: str, row: dict[str, Any]) -> CrmRecord:
    properties = {
        k: v for k, v in (row.get("properties") or {}).items() if v is not None
    }
    return CrmRecord(CrmRef(object_type, str(row["id"])), properties)


def _owner(row: dict[str, Any]) -> CrmUser:
    name = " ".join(p for p in (row.get("firstName"), row.get("lastName")) if p)
    return CrmUser(id=str(row["id"]), email=row.get("email"), name=name or None)


def _association(ref: CrmRef, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": ref.id},
        "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
        ],
    }
