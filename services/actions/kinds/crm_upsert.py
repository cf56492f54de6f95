"""The CRM create-or-update action: match on email, then update or create.

Settings come from the global CRM export settings (`SIGNALFLOW_CRM_*`), each
overridable by the workflow's step: the target CRM, whether new people become
contacts or leads, whether an existing record is updated, and whether a missing
account may be created. The record's standard fields come from the person's
profile (name, title; a Salesforce lead also needs its company), and the step's
`fields` templates, rendered as plain text, add to or replace them. The person
is then linked to the account found by domain, which is created first when
there is none and the settings allow it (a Salesforce lead carries the company
by name instead, until it is converted).

Outputs: `record_id`, `object` (contact or lead), `created` and `updated` (Yes or
No), `crm`, and `account_id` (and `account_created`) when an account was linked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.connectors.crm import CrmConnector, CrmRecord
from services.actions.crm_records import (
    PersonObject,
    account_domain,
    crm_object_type,
    find_account,
    person_email,
    person_object,
)
from services.actions.errors import PermanentError
from services.actions.resources import CrmTarget, Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import CrmUpsertParams

log = logging.getLogger(__name__)

#: Profile field -> CRM field, per CRM.
STANDARD_FIELDS: Mapping[str, Mapping[str, str]] = {
    "salesforce": {
        "first_name": "FirstName",
        "last_name": "LastName",
        "title": "Title",
    },
    "hubspot": {
        "first_name": "firstname",
        "last_name": "lastname",
        "title": "jobtitle",
    },
}


class CrmUpsertAction(Action[CrmUpsertParams]):
    """Creates or updates the run's person in Salesforce or HubSpot."""

    action_type = ActionType.CRM_UPSERT

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def perform(self, step: Step[CrmUpsertParams]) -> Outcome:
        plan = self._plan(step)
        if step.dry_run:
            return Outcome.ok(would_send(plan.view()))
        crm = await self._resources.connectors.crm(plan.target)
        existing = await crm.find_person(plan.email)
        if existing is not None:
            return await self._existing(step, crm, plan, existing)
        created = await crm.upsert_person(
            plan.email, plan.fields, object_type=plan.object_type
        )
        log.info(
            "created %s %s for run %s", plan.target, plan.kind, step.command.run_id
        )
        outputs = _outputs(plan, created.record, created=created.created, updated=False)
        outputs.update(await self._link_account(step, crm, plan, created.record))
        return Outcome.ok(outputs)

    async def _existing(
        self,
        step: Step[CrmUpsertParams],
        crm: CrmConnector,
        plan: UpsertPlan,
        record: CrmRecord,
    ) -> Outcome:
        kind = person_object(plan.target, record)
        if not plan.update_existing:
            outputs = _outputs(plan, record, created=False, updated=False, kind=kind)
            return Outcome.ok(outputs)
        await crm.update_fields(record.ref, _update_fields(plan))
        outputs = _outputs(plan, record, created=False, updated=True, kind=kind)
        outputs.update(await self._link_account(step, crm, plan, record))
        return Outcome.ok(outputs)

    async def _link_account(
        self,
        step: Step[CrmUpsertParams],
        crm: CrmConnector,
        plan: UpsertPlan,
        record: CrmRecord,
    ) -> dict[str, Any]:
        if plan.target == "salesforce" and record.ref.object_type == "Lead":
            return {}
        account = await find_account(step, crm)
        if account is not None:
            await crm.link_person_to_account(record.ref, account.ref)
            return {"account_id": account.ref.id}
        domain = account_domain(step)
        if not plan.create_account_if_missing or domain is None:
            return {}
        name = str((step.account or {}).get("fields", {}).get("name") or domain)
        created = await crm.create_account(name=name, domain=domain)
        await crm.link_person_to_account(record.ref, created)
        return {"account_id": created.id, "account_created": True}

    def _plan(self, step: Step[CrmUpsertParams]) -> UpsertPlan:
        params = step.params
        export = self._resources.crm_export
        target: CrmTarget = params.target or export.target
        kind: PersonObject = params.create_as or export.create_as
        fields = _standard_fields(step, target, kind)
        fields.update(
            {name: step.plain(value) for name, value in params.fields.items()}
        )
        return UpsertPlan(
            target=target,
            kind=kind,
            email=person_email(step),
            fields=fields,
            update_existing=_chosen(params.update_existing, export.update_existing),
            create_account_if_missing=_chosen(
                params.create_account_if_missing, export.create_account_if_missing
            ),
        )


@dataclass(frozen=True)
class UpsertPlan:
    """What the upsert will write, decided before any call."""

    target: CrmTarget
    kind: PersonObject
    email: str
    fields: dict[str, Any]
    update_existing: bool
    create_account_if_missing: bool

    @property
    def object_type(self) -> str:
        return crm_object_type(self.target, self.kind)

    def view(self) -> dict[str, Any]:
        """What a dry run reports."""
        return {
            "crm": self.target,
            "object": self.kind,
            "match_on_email": self.email,
            "update_existing": self.update_existing,
            "fields": self.fields,
        }


def _standard_fields(
    step: Step[CrmUpsertParams], target: CrmTarget, kind: PersonObject
) -> dict[str, Any]:
    profile = step.person.get("fields") or {}
    fields = {
        crm_name: profile[name]
        for name, crm_name in STANDARD_FIELDS[target].items()
        if profile.get(name)
    }
    company = (step.account or {}).get("fields", {}).get("name") or profile.get(
        "company_name"
    )
    if target == "salesforce":
        fields.setdefault("LastName", profile.get("last_name") or _email_name(step))
        if kind == "lead":
            fields["Company"] = company or account_domain(step) or "Unknown"
    else:
        if company:
            fields["company"] = company
        if kind == "lead":
            fields["lifecyclestage"] = "lead"
    return fields


def _update_fields(plan: UpsertPlan) -> dict[str, Any]:
    # An update never moves an existing contact back to a lead.
    return {k: v for k, v in plan.fields.items() if k != "lifecyclestage"}


def _outputs(
    plan: UpsertPlan,
    record: CrmRecord,
    *,
    created: bool,
    updated: bool,
    kind: PersonObject | None = None,
) -> dict[str, Any]:
    if not record.ref.id:
        raise PermanentError(f"{plan.target} returned a record without an id")
    return {
        "record_id": record.ref.id,
        "object": kind or plan.kind,
        "created": created,
        "updated": updated,
        "crm": plan.target,
    }


def _chosen(override: bool | None, default: bool) -> bool:
    return default if override is None else override


def _email_name(step: Step[CrmUpsertParams]) -> str:
    email = str(step.person.get("email") or "")
    return email.split("@", 1)[0] or "Unknown"
