"""Adding prospects to Outreach sequences and Salesloft cadences through the real
consumer, against both emulators."""

from __future__ import annotations

from typing import Any

from services.actions.resources import Resources
from signalflow.emulators.base import Fault
from signalflow.emulators.outreach import OutreachEmulator
from signalflow.emulators.salesloft import SalesloftEmulator
from signalflow.topics import ActionType

from .conftest import profile, step_command

EMAIL = "dana@acme.io"
AI = {"2.subject": "Congrats on the Series B", "2.body": "Hi Dana, well done."}


def sequence_step(params: dict[str, Any], **options: Any) -> dict[str, Any]:
    return step_command(
        ActionType.SEQUENCE,
        params,
        person=profile(
            "dana",
            email=EMAIL,
            owner="sam.seller@example.com",
            fields={"first_name": "Dana", "last_name": "Reyes", "title": "VP Sales"},
        ),
        account=profile(
            "acme",
            kind="ACCOUNT",
            owner="riley.rep@example.com",
            fields={"name": "Acme", "sdr": "avery.admin@example.com"},
        ),
        outputs=options.pop("outputs", AI),
        step_id=options.pop("step_id", "3"),
        **options,
    )


def outreach(running: Any) -> OutreachEmulator:
    emulator = running.server("outreach").emulator
    assert isinstance(emulator, OutreachEmulator)
    return emulator


def salesloft(running: Any) -> SalesloftEmulator:
    emulator = running.server("salesloft").emulator
    assert isinstance(emulator, SalesloftEmulator)
    return emulator


def outreach_user(org: OutreachEmulator, email: str) -> int:
    return next(
        user_id
        for user_id, user in org.store["users"].items()
        if user["attributes"]["email"] == email
    )


def outreach_sequence(org: OutreachEmulator, name: str) -> int:
    return next(
        seq_id
        for seq_id, seq in org.store["sequences"].items()
        if seq["attributes"]["name"] == name
    )


async def test_outreach_creates_the_prospect_with_owner_and_ai_fields_and_enrolls(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = outreach(await emulators("outreach"))
    harness = await harness_factory(ActionType.SEQUENCE, vendor_resources)

    result = await harness.run(
        sequence_step({"platform": "outreach", "sequence_name": "Funding follow-up"})
    )

    assert result["status"] == "OK", result
    outputs = result["outputs"]
    assert outputs["created"] == "Yes" and outputs["already_enrolled"] == "No"
    prospect = org.store["prospects"][int(outputs["prospect_id"])]
    assert prospect["attributes"]["firstName"] == "Dana"
    assert prospect["attributes"]["custom1"] == "Congrats on the Series B"
    assert prospect["attributes"]["custom2"] == "Hi Dana, well done."
    sam = outreach_user(org, "sam.seller@example.com")
    assert prospect["relationships"]["owner"] == ("user", sam)
    (state,) = org.states_of(int(outputs["prospect_id"]))
    assert state["relationships"]["sequence"] == (
        "sequence",
        outreach_sequence(org, "Funding follow-up"),
    )
    assert str(state["id"]) == outputs["enrollment_id"]


async def test_outreach_removes_other_sequences_and_uses_the_account_owner_field(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = outreach(await emulators("outreach"))
    harness = await harness_factory(ActionType.SEQUENCE, vendor_resources)
    first = await harness.run(
        sequence_step({"platform": "outreach", "sequence_name": "New hire welcome"})
    )

    moved = await harness.run(
        sequence_step(
            {
                "platform": "outreach",
                "sequence_id": str(outreach_sequence(org, "Funding follow-up")),
                "remove_from_other_sequences": True,
                "owner": {"kind": "account_owner", "field": "sdr"},
            }
        )
    )

    prospect_id = int(first["outputs"]["prospect_id"])
    assert moved["outputs"]["prospect_id"] == str(prospect_id)
    assert moved["outputs"]["created"] == "No"
    assert moved["outputs"]["removed_from"] == first["outputs"]["enrollment_id"]
    states = {s["id"]: s["attributes"]["state"] for s in org.states_of(prospect_id)}
    assert states[int(first["outputs"]["enrollment_id"])] == "finished"
    assert states[int(moved["outputs"]["enrollment_id"])] == "active"
    avery = outreach_user(org, "avery.admin@example.com")
    assert org.store["prospects"][prospect_id]["relationships"]["owner"] == (
        "user",
        avery,
    )


async def test_salesloft_cadence_for_a_specific_user_and_existing_person(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    team = salesloft(await emulators("salesloft"))
    harness = await harness_factory(ActionType.SEQUENCE, vendor_resources)
    params = {
        "platform": "salesloft",
        "sequence_name": "Re-engage champions",
        "owner": {"kind": "specific_user", "user": "riley.rep@example.com"},
    }

    created = await harness.run(sequence_step(params))
    again = await harness.run(sequence_step(params))

    person = team.people[int(created["outputs"]["prospect_id"])]
    assert person["custom_fields"] == {
        "ai_subject": "Congrats on the Series B",
        "ai_body": "Hi Dana, well done.",
    }
    riley = next(u for u in team.users.values() if u["email"].startswith("riley"))
    assert person["owner"]["id"] == riley["id"]
    assert created["outputs"]["created"] == "Yes"
    assert again["outputs"]["already_enrolled"] == "Yes"
    assert len(team.memberships) == 1


async def test_missing_prospect_without_create_is_permanent_and_429_retryable(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    running = await emulators("outreach")
    harness = await harness_factory(ActionType.SEQUENCE, vendor_resources)

    missing = await harness.run(
        sequence_step(
            {
                "platform": "outreach",
                "sequence_name": "Funding follow-up",
                "create_prospect_if_missing": False,
            }
        )
    )
    outreach(running).inject(Fault(kind="rate_limit", path="*/prospects"))
    limited = await harness.run(
        sequence_step({"platform": "outreach", "sequence_name": "Funding follow-up"})
    )

    assert (missing["status"], missing["retryable"]) == ("ERROR", False)
    assert (limited["status"], limited["retryable"]) == ("ERROR", True)
    assert limited["retry_after_ms"] == 1000


async def test_sequence_dry_run_enrolls_nobody(
    harness_factory, vendor_resources: Resources, emulators
) -> None:
    org = outreach(await emulators("outreach"))
    harness = await harness_factory(ActionType.SEQUENCE, vendor_resources)

    result = await harness.run(
        sequence_step(
            {"platform": "outreach", "sequence_name": "Funding follow-up"},
            mode="DRY_RUN",
        )
    )

    outputs = result["outputs"]
    assert outputs["would_send.sequence"] == "Funding follow-up"
    assert outputs["would_send.owner"] == "sam.seller@example.com"
    assert outputs["would_send.custom_fields.custom2"] == "Hi Dana, well done."
    assert not org.store["prospects"] and not org.received()
