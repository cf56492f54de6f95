"""The Outreach connector against the JSON:API emulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.actions.connectors.outreach import OutreachConnector, OutreachSettings
from services.actions.connectors.sequencing import EnrollmentRequest
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.outreach import OutreachEmulator
from signalflow.emulators.server import EmulatorServer

TOKEN = "outreach-test-token"
REQUEST = EnrollmentRequest(
    email="ada@acme-robotics.example",
    sequence="Funding follow-up",
    person_fields={"firstName": "Ada", "lastName": "Lovelace"},
    custom_fields={"custom1": "Congrats on the round", "custom2": "Hi Ada, ..."},
)


@pytest.fixture
async def org() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(OutreachEmulator(token=TOKEN)) as server:
        yield server


@pytest.fixture
async def outreach(org: EmulatorServer) -> AsyncIterator[OutreachConnector]:
    settings = OutreachSettings(
        base_url=org.base_url,
        access_token=SecretStr(TOKEN),
        default_mailbox_id="1",
        timeout_s=0.5,
    )
    async with OutreachConnector(settings) as connector:
        yield connector


def emulator(server: EmulatorServer) -> OutreachEmulator:
    assert isinstance(server.emulator, OutreachEmulator)
    return server.emulator


async def test_a_new_prospect_is_created_owned_and_enrolled(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    sam = await outreach.find_user_id("sam.seller@example.com")
    assert sam is not None

    outcome = await outreach.add_to_sequence(
        EnrollmentRequest(**{**REQUEST.__dict__, "owner_id": sam})
    )

    assert outcome.person_created and not outcome.already_enrolled
    prospect = emulator(org).store["prospects"][int(outcome.person_id)]
    assert prospect["attributes"]["custom1"] == "Congrats on the round"
    assert prospect["relationships"]["owner"] == ("user", int(sam))
    [state] = emulator(org).states_of(int(outcome.person_id))
    assert state["attributes"]["state"] == "active"
    assert state["relationships"]["mailbox"] == ("mailbox", int(sam))
    writes = org.emulator.received("POST", "/api/v2/*")
    assert all(r.headers["content-type"] == "application/vnd.api+json" for r in writes)


async def test_enrolling_twice_changes_nothing(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    first = await outreach.add_to_sequence(REQUEST)
    second = await outreach.add_to_sequence(REQUEST)

    assert second.already_enrolled and not second.person_created
    assert second.membership_id == first.membership_id
    assert len(emulator(org).states_of(int(first.person_id))) == 1


async def test_other_sequences_are_finished_when_asked(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    earlier = await outreach.add_to_sequence(
        EnrollmentRequest(email=REQUEST.email, sequence="Re-engage champions")
    )

    outcome = await outreach.add_to_sequence(
        EnrollmentRequest(
            email=REQUEST.email, sequence="2", remove_from_other_sequences=True
        )
    )

    assert outcome.removed_membership_ids == (earlier.membership_id,)
    states = {
        s["relationships"]["sequence"][1]: s["attributes"]["state"]
        for s in emulator(org).states_of(int(outcome.person_id))
    }
    assert states == {3: "finished", 2: "active"}


async def test_an_existing_prospect_gets_the_new_owner(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    person = await outreach.create_person(REQUEST.email, {}, owner_id="1")

    await outreach.add_to_sequence(
        EnrollmentRequest(email=REQUEST.email, sequence="1", owner_id="3")
    )

    stored = emulator(org).store["prospects"][int(person.id)]
    assert stored["relationships"]["owner"] == ("user", 3)


async def test_a_missing_sequence_is_permanent(outreach: OutreachConnector) -> None:
    with pytest.raises(PermanentError, match="existing sequence"):
        await outreach.add_to_sequence(
            EnrollmentRequest(email=REQUEST.email, sequence="No such sequence")
        )


async def test_a_missing_prospect_is_permanent_when_creating_is_off(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    with pytest.raises(PermanentError, match="creating one is turned off"):
        await outreach.add_to_sequence(
            EnrollmentRequest(
                email="x@y.example", sequence="1", create_if_missing=False
            )
        )

    assert not emulator(org).store["prospects"]


async def test_a_bad_custom_field_name_is_permanent(
    outreach: OutreachConnector,
) -> None:
    with pytest.raises(PermanentError, match="custom1..custom150"):
        await outreach.add_to_sequence(
            EnrollmentRequest(
                email="x@y.example", sequence="1", custom_fields={"notes": "x"}
            )
        )


async def test_rate_limit_is_retryable_with_retry_after(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(
        Fault(kind="rate_limit", path="/api/v2/prospects", retry_after_s=9)
    )

    with pytest.raises(RetryableError) as caught:
        await outreach.add_to_sequence(REQUEST)

    assert caught.value.status == 429 and caught.value.retry_after_s == 9


async def test_server_error_is_retryable(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(
        Fault(kind="server_error", method="POST", path="*/sequenceStates")
    )

    with pytest.raises(RetryableError):
        await outreach.add_to_sequence(REQUEST)

    # A retry completes the enrollment without creating the prospect again.
    outcome = await outreach.add_to_sequence(REQUEST)
    assert not outcome.person_created and not outcome.already_enrolled


async def test_bad_request_is_permanent(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError) as caught:
        await outreach.add_to_sequence(REQUEST)

    assert caught.value.status == 400


async def test_hang_past_the_timeout_is_retryable(
    outreach: OutreachConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await outreach.add_to_sequence(REQUEST)
