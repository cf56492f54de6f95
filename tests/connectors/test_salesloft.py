"""The Salesloft connector against the emulator over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from services.actions.connectors.salesloft import SalesloftConnector, SalesloftSettings
from services.actions.connectors.sequencing import EnrollmentRequest
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.salesloft import SalesloftEmulator
from signalflow.emulators.server import EmulatorServer

KEY = "salesloft-test-key"
REQUEST = EnrollmentRequest(
    email="ada@acme-robotics.example",
    sequence="Funding follow-up",
    person_fields={"first_name": "Ada", "last_name": "Lovelace"},
    custom_fields={"ai_subject": "Congrats on the round"},
)


@pytest.fixture
async def team() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(SalesloftEmulator(token=KEY)) as server:
        yield server


@pytest.fixture
async def salesloft(team: EmulatorServer) -> AsyncIterator[SalesloftConnector]:
    settings = SalesloftSettings(
        base_url=team.base_url, api_key=SecretStr(KEY), timeout_s=0.5
    )
    async with SalesloftConnector(settings) as connector:
        yield connector


def emulator(server: EmulatorServer) -> SalesloftEmulator:
    assert isinstance(server.emulator, SalesloftEmulator)
    return server.emulator


async def test_a_new_person_is_created_owned_and_added_to_the_cadence(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    riley = await salesloft.find_user_id("riley.rep@example.com")
    assert riley is not None

    outcome = await salesloft.add_to_sequence(
        EnrollmentRequest(**{**REQUEST.__dict__, "owner_id": riley})
    )

    assert outcome.person_created and not outcome.already_enrolled
    person = emulator(team).people[int(outcome.person_id)]
    assert person["first_name"] == "Ada" and person["owner"]["id"] == int(riley)
    assert person["custom_fields"] == {"ai_subject": "Congrats on the round"}
    membership = emulator(team).memberships[int(outcome.membership_id)]
    assert membership["currently_on_cadence"] and membership["user"]["id"] == int(riley)


async def test_adding_twice_changes_nothing(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    first = await salesloft.add_to_sequence(REQUEST)
    second = await salesloft.add_to_sequence(REQUEST)

    assert second.already_enrolled and second.membership_id == first.membership_id
    assert len(emulator(team).memberships) == 1


async def test_other_cadences_are_left_when_asked(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    earlier = await salesloft.add_to_sequence(
        EnrollmentRequest(email=REQUEST.email, sequence="New hire welcome")
    )

    outcome = await salesloft.add_to_sequence(
        EnrollmentRequest(
            email=REQUEST.email,
            sequence=REQUEST.sequence,
            remove_from_other_sequences=True,
        )
    )

    assert outcome.removed_membership_ids == (earlier.membership_id,)
    left = emulator(team).memberships[int(earlier.membership_id)]
    assert not left["currently_on_cadence"]


async def test_custom_fields_are_merged(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    outcome = await salesloft.add_to_sequence(REQUEST)

    await salesloft.write_custom_fields(outcome.person_id, {"ai_body": "Hi Ada"})

    assert emulator(team).people[int(outcome.person_id)]["custom_fields"] == {
        "ai_subject": "Congrats on the round",
        "ai_body": "Hi Ada",
    }


async def test_an_unknown_owner_is_permanent(salesloft: SalesloftConnector) -> None:
    with pytest.raises(PermanentError, match="owner_id must be an active user"):
        await salesloft.add_to_sequence(
            EnrollmentRequest(email="x@y.example", sequence="1", owner_id="42")
        )


async def test_a_missing_cadence_is_permanent(salesloft: SalesloftConnector) -> None:
    with pytest.raises(PermanentError, match="existing sequence"):
        await salesloft.add_to_sequence(
            EnrollmentRequest(email=REQUEST.email, sequence="Nope")
        )


async def test_rate_limit_is_retryable_with_retry_after(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    team.emulator.inject(Fault(kind="rate_limit", retry_after_s=2))

    with pytest.raises(RetryableError) as caught:
        await salesloft.add_to_sequence(REQUEST)

    assert caught.value.status == 429 and caught.value.retry_after_s == 2


async def test_server_error_is_retryable(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    team.emulator.inject(Fault(kind="server_error", method="POST"))

    with pytest.raises(RetryableError):
        await salesloft.add_to_sequence(REQUEST)


async def test_bad_request_is_permanent(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    team.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError):
        await salesloft.add_to_sequence(REQUEST)


async def test_hang_past_the_timeout_is_retryable(
    salesloft: SalesloftConnector, team: EmulatorServer
) -> None:
    team.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await salesloft.add_to_sequence(REQUEST)
