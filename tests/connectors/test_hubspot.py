"""The HubSpot connector against the emulator over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date

import pytest
from pydantic import SecretStr

from services.actions.connectors.crm import CrmRef, TaskSpec
from services.actions.connectors.hubspot import HubSpotConnector, HubSpotSettings
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.hubspot import HubSpotEmulator
from signalflow.emulators.server import EmulatorServer

TOKEN = "pat-na1-test-token"


@pytest.fixture
async def portal() -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(HubSpotEmulator(token=TOKEN)) as server:
        yield server


@pytest.fixture
async def hubspot(portal: EmulatorServer) -> AsyncIterator[HubSpotConnector]:
    settings = HubSpotSettings(
        base_url=portal.base_url, access_token=SecretStr(TOKEN), timeout_s=0.5
    )
    async with HubSpotConnector(settings) as connector:
        yield connector


def emulator(server: EmulatorServer) -> HubSpotEmulator:
    assert isinstance(server.emulator, HubSpotEmulator)
    return server.emulator


async def test_upsert_creates_a_contact_then_updates_it(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    first = await hubspot.upsert_person(
        "ada@acme-robotics.example", {"firstname": "Ada"}
    )
    second = await hubspot.upsert_person(
        "Ada@Acme-Robotics.example", {"jobtitle": "CTO"}
    )

    assert first.created and not second.created
    assert (
        second.record.ref == first.record.ref == CrmRef("contacts", first.record.ref.id)
    )
    stored = emulator(portal).objects["contacts"][first.record.ref.id]["properties"]
    assert stored["firstname"] == "Ada" and stored["jobtitle"] == "CTO"


async def test_concurrent_upserts_of_one_email_create_one_contact(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    # The first create is held, so the second upsert also finds no contact and
    # creates it; the held create then meets 409 CONFLICT and updates instead.
    portal.emulator.inject(
        Fault(kind="hang", method="POST", path="/crm/v3/objects/contacts", hang_s=0.3)
    )

    first, second = await asyncio.gather(
        hubspot.upsert_person("race@globex.example", {"jobtitle": "VP"}),
        hubspot.upsert_person("race@globex.example", {"lastname": "Race"}),
    )

    contacts = emulator(portal).objects["contacts"]
    assert len(contacts) == 1
    assert first.record.ref == second.record.ref
    assert [first.created, second.created].count(True) == 1
    stored = next(iter(contacts.values()))["properties"]
    assert stored["jobtitle"] == "VP" and stored["lastname"] == "Race"


async def test_unknown_property_is_permanent(hubspot: HubSpotConnector) -> None:
    with pytest.raises(PermanentError, match="shoe_size"):
        await hubspot.upsert_person("x@y.example", {"shoe_size": "44"})


async def test_a_company_is_created_with_its_name_and_domain(
    hubspot: HubSpotConnector,
) -> None:
    created = await hubspot.create_account(name="Initech", domain="initech.example")

    found = await hubspot.find_account_by_domain("initech.example")
    assert found is not None and found.ref == created
    assert found.fields["name"] == "Initech"


async def test_company_is_found_by_domain_and_associated(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    person = await hubspot.upsert_person("bo@globex.example", {"lastname": "Bo"})

    company = await hubspot.find_account_by_domain("https://www.globex.example/")
    assert company is not None and company.fields["name"] == "Globex"
    await hubspot.link_person_to_account(person.record.ref, company.ref)

    assert emulator(portal).associated(
        "contacts", person.record.ref.id, "companies"
    ) == [company.ref.id]
    assert await hubspot.find_account_by_domain("nowhere.example") is None


async def test_owner_is_found_assigned_and_read(
    hubspot: HubSpotConnector,
) -> None:
    person = await hubspot.upsert_person("cy@globex.example", {"lastname": "Cy"})
    seller = await hubspot.find_user_by_email("sam.seller@example.com")
    assert seller is not None and seller.name == "Sam Seller"

    await hubspot.assign_owner(person.record.ref, seller.id)

    assert await hubspot.get_owner(person.record.ref) == seller
    with pytest.raises(PermanentError, match="not a valid owner"):
        await hubspot.assign_owner(person.record.ref, "123")


async def test_task_is_associated_with_contact_and_company(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    person = await hubspot.upsert_person("di@globex.example", {"lastname": "Di"})
    company = await hubspot.find_account_by_domain("globex.example")
    assert company is not None

    task = await hubspot.create_task(
        TaskSpec(
            subject="Congratulate Di",
            due=date(2030, 1, 15),
            person=person.record.ref,
            account=company.ref,
            priority="high",
        )
    )

    stored = emulator(portal).objects["tasks"][task.id]["properties"]
    assert stored["hs_timestamp"].startswith("2030-01-15T")
    assert stored["hs_task_priority"] == "HIGH"
    assert emulator(portal).associated("tasks", task.id, "contacts") == [
        person.record.ref.id
    ]
    assert emulator(portal).associated("tasks", task.id, "companies") == [
        company.ref.id
    ]


async def test_rate_limit_is_retryable_with_retry_after(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    portal.emulator.inject(Fault(kind="rate_limit", path="*/search", retry_after_s=3))

    with pytest.raises(RetryableError) as caught:
        await hubspot.find_person("x@y.example")

    assert caught.value.status == 429 and caught.value.retry_after_s == 3
    assert "RATE_LIMITS" in str(caught.value)


async def test_calls_are_refused_while_backing_off(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    portal.emulator.inject(Fault(kind="rate_limit", retry_after_s=30))
    with pytest.raises(RetryableError):
        await hubspot.find_person("x@y.example")
    sent = len(portal.emulator.requests)

    with pytest.raises(RetryableError) as caught:
        await hubspot.find_person("x@y.example")

    assert len(portal.emulator.requests) == sent
    assert (
        caught.value.retry_after_s is not None and 25 < caught.value.retry_after_s <= 30
    )


async def test_server_error_is_retryable(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    portal.emulator.inject(Fault(kind="server_error", method="POST"))

    with pytest.raises(RetryableError) as caught:
        await hubspot.find_person("x@y.example")

    assert caught.value.status == 500


async def test_bad_request_is_permanent(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    portal.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError) as caught:
        await hubspot.find_person("x@y.example")

    assert caught.value.status == 400


async def test_hang_past_the_timeout_is_retryable(
    hubspot: HubSpotConnector, portal: EmulatorServer
) -> None:
    portal.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer"):
        await hubspot.find_person("x@y.example")


async def test_a_wrong_token_is_permanent(portal: EmulatorServer) -> None:
    settings = HubSpotSettings(base_url=portal.base_url, access_token=SecretStr("nope"))
    async with HubSpotConnector(settings) as connector:
        with pytest.raises(PermanentError, match="INVALID_AUTHENTICATION") as caught:
            await connector.find_person("x@y.example")

    assert caught.value.status == 401
