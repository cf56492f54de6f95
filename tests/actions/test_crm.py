"""CRM create-or-update and CRM field updates, through the real consumer, against
the Salesforce (over TLS, with simple-salesforce) and HubSpot emulators."""

from __future__ import annotations

from typing import Any

import pytest

from services.actions.resources import Resources
from services.actions.settings import CrmExportSettings
from signalflow.emulators.base import Fault
from signalflow.emulators.hubspot import HubSpotEmulator
from signalflow.emulators.salesforce import SalesforceEmulator
from signalflow.topics import ActionType

from .conftest import profile, step_command

EMAIL = "dana@acme-robotics.example"


def person(**fields: Any) -> dict[str, Any]:
    return profile(
        "dana",
        account_key="acme",
        email=EMAIL,
        owner="sam.seller@example.com",
        fields={
            "first_name": "Dana",
            "last_name": "Reyes",
            "title": "VP Sales",
            **fields,
        },
    )


def account() -> dict[str, Any]:
    return profile(
        "acme",
        kind="ACCOUNT",
        owner="riley.rep@example.com",
        fields={"name": "Acme Robotics", "domain": "acme-robotics.example"},
    )


def upsert(params: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
    return step_command(
        ActionType.CRM_UPSERT,
        params or {},
        person=person(),
        account=account(),
        **options,
    )


def salesforce(running: Any) -> SalesforceEmulator:
    emulator = running.server("salesforce").emulator
    assert isinstance(emulator, SalesforceEmulator)
    return emulator


def hubspot(running: Any) -> HubSpotEmulator:
    emulator = running.server("hubspot").emulator
    assert isinstance(emulator, HubSpotEmulator)
    return emulator


async def test_upsert_creates_a_salesforce_contact_linked_to_its_account(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(
        upsert({"fields": {"LeadSource": "Signal: $Signal Type"}})
    )

    assert result["status"] == "OK", result
    outputs = result["outputs"]
    assert outputs["object"] == "contact" and outputs["created"] == "Yes"
    assert outputs["crm"] == "salesforce"
    contact = salesforce(running).records["Contact"][outputs["record_id"]]
    assert contact["Email"] == EMAIL and contact["Title"] == "VP Sales"
    assert contact["LeadSource"] == "Signal: funding"
    (acme,) = salesforce(running).find("Account", Name="Acme Robotics")
    assert contact["AccountId"] == acme["Id"] == outputs["account_id"]


async def test_upsert_updates_an_existing_record_matched_on_email(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    existing = salesforce(running).insert(
        "Contact", {"LastName": "Reyes", "Email": EMAIL, "Title": "Director"}
    )
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(upsert())

    assert result["outputs"]["record_id"] == existing
    assert (result["outputs"]["created"], result["outputs"]["updated"]) == ("No", "Yes")
    assert salesforce(running).records["Contact"][existing]["Title"] == "VP Sales"


async def test_upsert_leaves_an_existing_record_alone_when_told_not_to_update(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    existing = salesforce(running).insert(
        "Contact", {"LastName": "Reyes", "Email": EMAIL, "Title": "Director"}
    )
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(upsert({"update_existing": False}))

    assert result["outputs"]["record_id"] == existing
    assert result["outputs"]["updated"] == "No"
    assert salesforce(running).records["Contact"][existing]["Title"] == "Director"
    assert not salesforce(running).received("PATCH", "*")


async def test_global_export_settings_create_leads_with_their_company(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    vendor_resources.crm_export = CrmExportSettings(create_as="lead")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(upsert())

    assert result["outputs"]["object"] == "lead"
    lead = salesforce(running).records["Lead"][result["outputs"]["record_id"]]
    assert lead["Company"] == "Acme Robotics" and lead["Email"] == EMAIL
    assert not salesforce(running).records["Contact"]


async def test_a_workflow_overrides_the_global_crm_with_hubspot(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce", "hubspot")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(upsert({"target": "hubspot", "create_as": "lead"}))

    outputs = result["outputs"]
    assert (outputs["crm"], outputs["object"], outputs["created"]) == (
        "hubspot",
        "lead",
        "Yes",
    )
    contact = hubspot(running).objects["contacts"][outputs["record_id"]]
    assert contact["properties"]["lifecyclestage"] == "lead"
    assert contact["properties"]["jobtitle"] == "VP Sales"
    assert hubspot(running).associated("contacts", outputs["record_id"], "companies")
    assert not salesforce(running).records["Contact"]


async def test_the_same_command_delivered_twice_creates_one_record(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)
    command = upsert()

    harness.send(command)
    harness.send(command)
    first, second = await harness.results.wait_for(2, key=command["idempotency_key"])

    assert first["status"] == second["status"] == "OK"
    assert first["outputs"] == second["outputs"]
    assert len(salesforce(running).records["Contact"]) == 1
    assert len(salesforce(running).received("POST", "*/sobjects/Contact*")) == 1


@pytest.mark.parametrize(
    ("kind", "retryable"), [("rate_limit", True), ("server_error", True)]
)
async def test_crm_429_and_500_are_retryable_and_succeed_when_resent(
    harness_factory, vendor_resources: Resources, emulators, kind: str, retryable: bool
) -> None:
    running = await emulators("salesforce")
    salesforce(running).inject(
        Fault(kind=kind, method="POST", path="*/sobjects/Contact*")
    )
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)
    command = upsert()

    failed = await harness.run(command)
    if kind == "rate_limit":
        assert failed["retry_after_ms"] == 1000
        await __import__("asyncio").sleep(1.1)
    passed = await harness.run({**command, "attempt": 2})

    assert (failed["status"], failed["retryable"]) == ("ERROR", retryable)
    assert passed["status"] == "OK" and passed["outputs"]["created"] == "Yes"
    assert len(salesforce(running).records["Contact"]) == 1


async def test_crm_400_fails_the_step_as_permanent(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    salesforce(running).inject(
        Fault(kind="bad_request", method="POST", path="*/sobjects/Contact*")
    )
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    failed = await harness.run(upsert())

    assert (failed["status"], failed["retryable"]) == ("ERROR", False)
    assert failed["retry_after_ms"] is None and "400" in failed["error"]


async def test_upsert_dry_run_renders_without_calling_the_crm(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)

    result = await harness.run(
        upsert({"fields": {"Description": "$Company Name raised"}}, mode="DRY_RUN")
    )

    outputs = result["outputs"]
    assert outputs["would_send.crm"] == "salesforce"
    assert outputs["would_send.match_on_email"] == EMAIL
    assert outputs["would_send.fields.Description"] == "Acme Robotics raised"
    assert not salesforce(running).received()


async def test_crm_update_writes_templated_fields_to_the_person_and_the_account(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    contact = salesforce(running).insert(
        "Contact", {"LastName": "Reyes", "Email": EMAIL}
    )
    harness = await harness_factory(ActionType.CRM_UPDATE, vendor_resources)
    ai = {"3.subject": "Congrats", "3.body": "Hi Dana, <b>&</b>"}

    on_person = await harness.run(
        step_command(
            ActionType.CRM_UPDATE,
            {"fields": {"Description": "$AI Body", "Title": "$Current Title"}},
            person=person(),
            account=account(),
            outputs=ai,
            step_id="4",
        )
    )
    on_account = await harness.run(
        step_command(
            ActionType.CRM_UPDATE,
            {"record": "account", "fields": {"Industry": "${Industry|Robotics}"}},
            person=person(),
            account=account(),
        )
    )

    assert on_person["outputs"]["record_id"] == contact
    stored = salesforce(running).records["Contact"][contact]
    assert (
        stored["Description"] == "Hi Dana, <b>&</b>" and stored["Title"] == "VP Sales"
    )
    assert on_account["outputs"]["object"] == "account"
    (acme,) = salesforce(running).find("Account", Name="Acme Robotics")
    assert acme["Industry"] == "Robotics"


async def test_crm_update_uses_the_record_an_earlier_crm_step_wrote(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("hubspot")
    contact = hubspot(running).insert("contacts", {"email": "other@example.com"})
    harness = await harness_factory(ActionType.CRM_UPDATE, vendor_resources)

    result = await harness.run(
        step_command(
            ActionType.CRM_UPDATE,
            {"fields": {"signalflow_message": "$Signal Type"}},
            person=person(),
            account=account(),
            outputs={"0.record_id": contact, "0.object": "contact", "0.crm": "hubspot"},
            step_id="1",
        )
    )

    assert result["status"] == "OK", result
    stored = hubspot(running).objects["contacts"][contact]["properties"]
    assert stored["signalflow_message"] == "funding"


async def test_a_missing_account_is_created_when_the_settings_allow_it(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("hubspot")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)
    newco = profile(
        "newco", kind="ACCOUNT", fields={"name": "Newco", "domain": "newco.example"}
    )

    def command(email: str, params: dict[str, Any]) -> dict[str, Any]:
        return step_command(
            ActionType.CRM_UPSERT,
            {"target": "hubspot", **params},
            person=profile("ann", email=email, fields={"last_name": "Lee"}),
            account=newco,
        )

    unlinked = await harness.run(command("ann@newco.example", {}))
    linked = await harness.run(
        command("bo@newco.example", {"create_account_if_missing": True})
    )

    assert "account_id" not in unlinked["outputs"]
    company = linked["outputs"]["account_id"]
    assert linked["outputs"]["account_created"] == "Yes"
    stored = hubspot(running).objects["companies"][company]["properties"]
    assert (stored["name"], stored["domain"]) == ("Newco", "newco.example")
    assert hubspot(running).associated(
        "contacts", linked["outputs"]["record_id"], "companies"
    ) == [company]


async def test_a_missing_salesforce_account_is_created_and_linked(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("salesforce")
    harness = await harness_factory(ActionType.CRM_UPSERT, vendor_resources)
    newco = profile(
        "newco", kind="ACCOUNT", fields={"name": "Newco", "domain": "newco.example"}
    )

    ann = profile("ann", email="ann@newco.example", fields={"last_name": "Lee"})
    result = await harness.run(
        step_command(
            ActionType.CRM_UPSERT,
            {"target": "salesforce", "create_account_if_missing": True},
            person=ann,
            account=newco,
        )
    )

    assert result["status"] == "OK", result
    outputs = result["outputs"]
    assert outputs["account_created"] == "Yes"
    (created,) = salesforce(running).find("Account", Name="Newco")
    assert created["Website"] == "newco.example"
    contact = salesforce(running).records["Contact"][outputs["record_id"]]
    assert contact["AccountId"] == created["Id"] == outputs["account_id"]
