"""Ownership assignment and CRM tasks through the real consumer, against the
Salesforce emulator (simple-salesforce over TLS)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.actions.resources import Connectors, Resources, default_factories
from services.actions.settings import ActionSettings
from signalflow.emulators.salesforce import SalesforceEmulator
from signalflow.topics import ActionType

from .conftest import profile, step_command

EMAIL = "dana@acme-robotics.example"
SAM = "sam.seller@example.com"
RILEY = "riley.rep@example.com"
AVERY = "avery.admin@example.com"


def salesforce(running: Any) -> SalesforceEmulator:
    emulator = running.server("salesforce").emulator
    assert isinstance(emulator, SalesforceEmulator)
    return emulator


def user_id(org: SalesforceEmulator, email: str) -> str:
    (user,) = org.find("User", Email=email)
    return str(user["Id"])


def command(
    action: ActionType, params: dict[str, Any], **options: Any
) -> dict[str, Any]:
    person_fields = {"first_name": "Dana", "last_name": "Reyes", "title": "VP Sales"}
    return step_command(
        action,
        params,
        person=profile("dana", email=EMAIL, owner=SAM, fields=person_fields),
        account=profile(
            "acme",
            kind="ACCOUNT",
            fields={
                "name": "Acme Robotics",
                "domain": "acme-robotics.example",
                "sdr_owner": RILEY,
            },
        ),
        **options,
    )


def contact(org: SalesforceEmulator, **fields: Any) -> str:
    return org.insert("Contact", {"LastName": "Reyes", "Email": EMAIL, **fields})


async def test_assign_a_specific_user_by_email(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    record = contact(org)
    harness = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)

    result = await harness.run(
        command(
            ActionType.ASSIGN_OWNER,
            {"method": {"kind": "specific_user", "user": SAM}},
        )
    )

    assert result["status"] == "OK", result
    assert result["outputs"]["owner"] == SAM
    assert result["outputs"]["owner_id"] == user_id(org, SAM)
    assert result["outputs"]["owner_name"] == "Sam Seller"
    assert org.records["Contact"][record]["OwnerId"] == user_id(org, SAM)


async def test_assign_from_the_records_and_the_accounts_owner_fields(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    record = contact(org, Description=AVERY)
    harness = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)

    # The contact's own field is read from Salesforce; the account's comes from the
    # run's snapshot of the account (Salesforce's Account has no such field).
    from_record = await harness.run(
        command(
            ActionType.ASSIGN_OWNER,
            {"method": {"kind": "record_owner_field", "field": "Description"}},
        )
    )
    from_account = await harness.run(
        command(
            ActionType.ASSIGN_OWNER,
            {
                "method": {"kind": "account_owner_field", "field": "sdr_owner"},
                "write_field": "OwnerId",
            },
        )
    )

    assert from_record["outputs"]["owner"] == AVERY
    assert from_account["outputs"]["owner"] == RILEY
    assert org.records["Contact"][record]["OwnerId"] == user_id(org, RILEY)


async def test_round_robin_is_weighted_fair_across_replicas_and_skips_unavailable(
    harness_factory,
    vendor_resources: Resources,
    emulators,
    own_settings: ActionSettings,
) -> None:
    org = salesforce(await emulators("salesforce"))
    contact(org)
    own_settings.unavailable_users = ["nobody.here@example.com"]
    await vendor_resources.redis.sadd(
        vendor_resources.redis_key("unavailable-users"), AVERY
    )
    first = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)
    replica = dataclasses.replace(
        vendor_resources, connectors=Connectors(default_factories())
    )
    await harness_factory(ActionType.ASSIGN_OWNER, replica)
    params = {
        "method": {
            "kind": "round_robin",
            "users": [
                {"user": SAM, "weight": 2},
                {"user": RILEY, "weight": 1},
                {"user": AVERY, "weight": 5},
                {"user": "nobody.here@example.com", "weight": 5},
            ],
        }
    }
    commands = [
        command(ActionType.ASSIGN_OWNER, params, run_id=f"rr-{index}")
        for index in range(12)
    ]

    for item in commands:
        first.send(item)
    results = await first.results.wait_for(12)

    assert all(result["status"] == "OK" for result in results), results
    assert Counter(r["outputs"]["owner"] for r in results) == {SAM: 8, RILEY: 4}


async def test_only_if_unowned_keeps_an_existing_owner(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    record = contact(org, OwnerId=user_id(org, RILEY))
    harness = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)

    result = await harness.run(
        command(
            ActionType.ASSIGN_OWNER,
            {
                "method": {"kind": "specific_user", "user": SAM},
                "only_if_unowned": True,
            },
        )
    )

    assert result["status"] == "SKIPPED"
    assert result["outputs"]["owner_id"] == user_id(org, RILEY)
    assert org.records["Contact"][record]["OwnerId"] == user_id(org, RILEY)


async def test_assign_dry_run_peeks_without_writing_or_taking_a_turn(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    contact(org)
    harness = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)
    params = {
        "method": {"kind": "round_robin", "users": [{"user": SAM}, {"user": RILEY}]}
    }

    dry = [
        await harness.run(command(ActionType.ASSIGN_OWNER, params, mode="DRY_RUN"))
        for _ in range(2)
    ]
    live = await harness.run(command(ActionType.ASSIGN_OWNER, params))

    assert [d["outputs"]["would_send.owner"] for d in dry] == [SAM, SAM]
    assert dry[0]["outputs"]["would_send.field"] == "OwnerId"
    assert live["outputs"]["owner"] == SAM
    assert len(org.received("PATCH", "*")) == 1


async def test_task_is_created_with_due_date_owner_priority_and_fields(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    record = contact(org, OwnerId=user_id(org, SAM))
    harness = await harness_factory(ActionType.TASK, vendor_resources)

    result = await harness.run(
        command(
            ActionType.TASK,
            {
                "subject": "Call $First Name about the *$Funding Round*",
                "description": "$Company Name raised ${Funding Amount}.",
                "static_text": "Use the funding talk track.",
                "due_in_days": 3,
                "priority": "high",
                "fields": {"Type": "Call"},
            },
        )
    )

    assert result["status"] == "OK", result
    task = org.records["Task"][result["outputs"]["task_id"]]
    assert task["Subject"] == "Call Dana about the Series B"
    assert task["Description"] == (
        "Acme Robotics raised 25000000.\n\nUse the funding talk track."
    )
    due = datetime.now(UTC).date() + timedelta(days=3)
    assert task["ActivityDate"] == due.isoformat()
    assert task["Priority"] == "High" and task["Type"] == "Call"
    assert task["OwnerId"] == user_id(org, SAM)
    assert task["WhoId"] == record
    (acme,) = org.find("Account", Name="Acme Robotics")
    assert task["WhatId"] == acme["Id"]


async def test_task_for_a_specific_user_in_test_mode_is_marked(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    contact(org)
    harness = await harness_factory(ActionType.TASK, vendor_resources)

    result = await harness.run(
        command(
            ActionType.TASK,
            {
                "subject": "Follow up",
                "assign_to": {"kind": "specific_user", "user": RILEY},
            },
            mode="TEST",
        )
    )
    dry = await harness.run(
        command(ActionType.TASK, {"subject": "Follow up"}, mode="DRY_RUN")
    )

    task = org.records["Task"][result["outputs"]["task_id"]]
    assert task["Subject"] == "[TEST] Follow up"
    assert task["OwnerId"] == user_id(org, RILEY)
    assert dry["outputs"]["would_send.subject"] == "Follow up"
    assert (
        date.fromisoformat(dry["outputs"]["would_send.due"]) == datetime.now(UTC).date()
    )
    assert len(org.records["Task"]) == 1
    await asyncio.sleep(0)


async def test_assign_writes_a_custom_owner_field_when_asked(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    record = contact(org, OwnerId=user_id(org, RILEY))
    harness = await harness_factory(ActionType.ASSIGN_OWNER, vendor_resources)

    await harness.run(
        command(
            ActionType.ASSIGN_OWNER,
            {
                "method": {"kind": "specific_user", "user": SAM},
                "write_field": "SDR_Owner__c",
            },
        )
    )

    stored = org.records["Contact"][record]
    assert stored["SDR_Owner__c"] == user_id(org, SAM)
    assert stored["OwnerId"] == user_id(org, RILEY)


async def test_task_for_the_account_owner_and_a_record_owner_field(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = salesforce(await emulators("salesforce"))
    contact(org, Description=AVERY)
    (acme,) = org.find("Account", Name="Acme Robotics")
    org.records["Account"][acme["Id"]]["OwnerId"] = user_id(org, RILEY)
    harness = await harness_factory(ActionType.TASK, vendor_resources)

    for_account_owner = await harness.run(
        command(
            ActionType.TASK,
            {"subject": "Account plan", "assign_to": {"kind": "account_owner"}},
        )
    )
    for_field = await harness.run(
        command(
            ActionType.TASK,
            {
                "subject": "SDR follow-up",
                "assign_to": {"kind": "record_owner", "field": "Description"},
            },
        )
    )

    tasks = org.records["Task"]
    assert tasks[for_account_owner["outputs"]["task_id"]]["OwnerId"] == user_id(
        org, RILEY
    )
    assert tasks[for_field["outputs"]["task_id"]]["OwnerId"] == user_id(org, AVERY)
