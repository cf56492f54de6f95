"""Finding the run's person and account in the CRM, for every CRM action.

Which CRM: a CRM step's own override, else the global export settings; the steps
after a CRM step follow the CRM that step wrote to (its `crm` output). Which
record: the one an earlier CRM step of the run created or updated (its
`record_id` and `object` outputs), else the person matched by email; the account
matched by the domain of the account (or of the person's email).

Object names: the actions speak of `contact` and `lead`; Salesforce has the
objects Contact and Lead, HubSpot has contacts only and marks a lead with its
lifecycle stage.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from services.actions.action import Step
from services.actions.connectors.crm import CrmConnector, CrmRecord, CrmRef, CrmUser
from services.actions.errors import PermanentError
from services.actions.resources import CrmTarget, Resources
from signalflow.workflow.steps import Params

PersonObject = Literal["contact", "lead"]
SALESFORCE_OBJECTS: Mapping[str, str] = {"contact": "Contact", "lead": "Lead"}
HUBSPOT_CONTACTS = "contacts"
OWNER_FIELDS: Mapping[str, str] = {
    "salesforce": "OwnerId",
    "hubspot": "hubspot_owner_id",
}


@dataclass(frozen=True)
class CrmPerson:
    """The run's person in one CRM: the record and whether it is a contact or lead."""

    target: CrmTarget
    record: CrmRecord
    object: PersonObject


def run_target(step: Step[Params], resources: Resources) -> CrmTarget:
    """The CRM this step acts on: the one an earlier CRM step used, else global."""
    earlier = step.context.output_value("crm")
    if earlier in ("salesforce", "hubspot"):
        target: CrmTarget = earlier
        return target
    return resources.crm_export.target


def crm_object_type(target: CrmTarget, kind: PersonObject) -> str:
    """The CRM's object type of a contact or lead."""
    if target == "salesforce":
        return SALESFORCE_OBJECTS[kind]
    return HUBSPOT_CONTACTS


def person_object(target: CrmTarget, record: CrmRecord) -> PersonObject:
    """Whether a person record is a contact or a lead."""
    if target == "salesforce":
        return "lead" if record.ref.object_type == "Lead" else "contact"
    stage = str(record.fields.get("lifecyclestage") or "")
    return "lead" if stage == "lead" else "contact"


def person_email(step: Step[Params]) -> str:
    """The person's email address; raises PermanentError when they have none."""
    email = step.person.get("email") or (step.person.get("fields") or {}).get("email")
    if not email:
        raise PermanentError(
            f"person {step.person.get('key')!r} has no email address to find them "
            "in the CRM by"
        )
    return str(email)


async def find_person(
    step: Step[Params], crm: CrmConnector, target: CrmTarget
) -> CrmPerson:
    """The person's CRM record: from an earlier CRM step of the run, else by email.

    Raises PermanentError when the CRM has no such person.
    """
    record_id = step.context.output_value("record_id")
    kind = step.context.output_value("object")
    if record_id and kind in ("contact", "lead"):
        ref = CrmRef(crm_object_type(target, kind), str(record_id))
        return CrmPerson(target, CrmRecord(ref, {}), kind)
    email = person_email(step)
    record = await crm.find_person(email)
    if record is None:
        raise PermanentError(
            f"no contact or lead with email {email!r} in {target}; add a CRM create "
            "or update step before this one"
        )
    return CrmPerson(target, record, person_object(target, record))


def account_domain(step: Step[Params]) -> str | None:
    """The account's web domain: its `domain` or `website`, else the email's."""
    account = step.account or {}
    fields = account.get("fields") or {}
    for name in ("domain", "website", "Website"):
        value = fields.get(name)
        if value:
            return str(value)
    email = step.person.get("email")
    if email and "@" in str(email):
        return str(email).rsplit("@", 1)[1]
    return None


async def find_account(step: Step[Params], crm: CrmConnector) -> CrmRecord | None:
    """The account matched by domain, or None when there is no domain or match."""
    domain = account_domain(step)
    if domain is None:
        return None
    return await crm.find_account_by_domain(domain)


async def resolve_user(crm: CrmConnector, target: CrmTarget, user: str) -> CrmUser:
    """A configured user (an email address or a CRM user id) as a CRM user.

    Raises PermanentError for an email address the CRM has no user for.
    """
    if "@" not in user:
        return CrmUser(id=user, email=None, name=None)
    found = await crm.find_user_by_email(user)
    if found is None:
        raise PermanentError(f"no {target} user has the email address {user!r}")
    return found


def record_field(
    record: CrmRecord | None, snapshot: Mapping[str, Any] | None, field: str
) -> str | None:
    """A field's value: from the CRM record when read, else the run's snapshot."""
    if record is not None and record.fields.get(field):
        return str(record.fields[field])
    fields = (snapshot or {}).get("fields") or {}
    value = fields.get(field) or (snapshot or {}).get(field)
    return str(value) if value else None


async def read_fully(crm: CrmConnector, record: CrmRecord | None) -> CrmRecord | None:
    """The record with every field, when the connector can read whole records.

    Records found by email or domain carry a few fields; a custom owner field
    needs the whole record. A connector without `read` leaves the record as it is,
    and `record_field` then falls back to the run's snapshot.
    """
    read = getattr(crm, "read", None)
    if record is None or read is None:
        return record
    full: CrmRecord = await read(record.ref)
    return full
