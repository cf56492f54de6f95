"""The Salesforce connector through simple-salesforce, against the emulator over TLS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date

import pytest
from pydantic import SecretStr

from services.actions.connectors.crm import CrmRef, TaskSpec
from services.actions.connectors.salesforce import (
    SalesforceConnector,
    SalesforceSettings,
)
from services.actions.errors import PermanentError, RetryableError
from signalflow.emulators.base import Fault
from signalflow.emulators.salesforce import SalesforceEmulator
from signalflow.emulators.server import EmulatorServer
from signalflow.emulators.tls import TlsFiles

TOKEN = "00Dtest!session-token"


@pytest.fixture
async def org(tls_files: TlsFiles) -> AsyncIterator[EmulatorServer]:
    async with EmulatorServer(SalesforceEmulator(token=TOKEN), tls=tls_files) as server:
        yield server


@pytest.fixture
async def salesforce(
    org: EmulatorServer, tls_files: TlsFiles
) -> AsyncIterator[SalesforceConnector]:
    settings = SalesforceSettings(
        instance_url=org.base_url,
        access_token=SecretStr(TOKEN),
        ca_file=tls_files.ca_file,
        timeout_s=0.5,
    )
    async with SalesforceConnector(settings) as connector:
        yield connector


def emulator(server: EmulatorServer) -> SalesforceEmulator:
    assert isinstance(server.emulator, SalesforceEmulator)
    return server.emulator


async def test_upsert_creates_a_contact_then_updates_it(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    first = await salesforce.upsert_person(
        "ada@acme-robotics.example", {"FirstName": "Ada", "LastName": "Lovelace"}
    )
    second = await salesforce.upsert_person(
        "ADA@acme-robotics.example", {"Title": "CTO"}
    )

    assert first.created and not second.created
    assert second.record.ref == first.record.ref
    stored = emulator(org).records["Contact"][first.record.ref.id]
    assert stored["Title"] == "CTO" and stored["Name"] == "Ada Lovelace"
    assert emulator(org).received("GET", "*/query/")


async def test_upsert_finds_an_existing_lead_before_creating_a_contact(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    lead_id = emulator(org).insert(
        "Lead", {"LastName": "Hopper", "Company": "Navy", "Email": "grace@navy.example"}
    )

    outcome = await salesforce.upsert_person("grace@navy.example", {"Title": "RADM"})

    assert outcome.record.ref == CrmRef("Lead", lead_id)
    assert not emulator(org).records["Contact"]


async def test_creating_a_lead_without_company_is_permanent(
    salesforce: SalesforceConnector,
) -> None:
    with pytest.raises(PermanentError, match="REQUIRED_FIELD_MISSING"):
        await salesforce.upsert_person(
            "x@y.example", {"LastName": "X"}, object_type="Lead"
        )


async def test_account_is_found_by_domain_and_linked(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    person = await salesforce.upsert_person(
        "bo@acme-robotics.example", {"LastName": "Bo"}
    )

    account = await salesforce.find_account_by_domain("acme-robotics.example")
    assert account is not None and account.fields["Name"] == "Acme Robotics"
    await salesforce.link_person_to_account(person.record.ref, account.ref)

    stored = emulator(org).records["Contact"][person.record.ref.id]
    assert stored["AccountId"] == account.ref.id
    assert await salesforce.find_account_by_domain("robotics.example") is None


async def test_an_account_is_created_with_its_name_and_website(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    created = await salesforce.create_account(name="Newco", domain="newco.example")

    found = await salesforce.find_account_by_domain("https://newco.example")
    assert found is not None and found.ref == created
    assert emulator(org).records["Account"][created.id]["Name"] == "Newco"
    # A person's Name is computed from first and last name: never written.
    person = await salesforce.upsert_person("cy@newco.example", {"LastName": "Cy"})
    with pytest.raises(PermanentError, match="INVALID_FIELD_FOR_INSERT_UPDATE"):
        await salesforce.update_fields(person.record.ref, {"Name": "Cy Young"})


async def test_owner_is_read_and_assigned(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    person = await salesforce.upsert_person("cy@globex.example", {"LastName": "Cy"})
    seller = await salesforce.find_user_by_email("sam.seller@example.com")
    assert seller is not None

    await salesforce.assign_owner(person.record.ref, seller.id)

    owner = await salesforce.get_owner(person.record.ref)
    assert owner == seller
    with pytest.raises(PermanentError, match="INVALID_CROSS_REFERENCE_KEY"):
        await salesforce.assign_owner(person.record.ref, "005000000000000AAA")


async def test_task_is_created_for_the_person(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    person = await salesforce.upsert_person("di@globex.example", {"LastName": "Di"})

    task = await salesforce.create_task(
        TaskSpec(
            subject="Call Di about the funding round",
            body="They raised a Series B.",
            due=date(2030, 1, 15),
            person=person.record.ref,
            priority="high",
        )
    )

    stored = emulator(org).records["Task"][task.id]
    assert stored["WhoId"] == person.record.ref.id
    assert stored["ActivityDate"] == "2030-01-15" and stored["Priority"] == "High"


async def test_rate_limit_is_retryable_with_retry_after(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="rate_limit", path="*/query*", retry_after_s=7))

    with pytest.raises(RetryableError) as caught:
        await salesforce.find_person("x@y.example")

    assert caught.value.status == 429 and caught.value.retry_after_s == 7
    assert TOKEN not in str(caught.value)


async def test_server_error_is_retryable(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="server_error", method="POST"))

    with pytest.raises(RetryableError) as caught:
        await salesforce.upsert_person("x@y.example", {"LastName": "X"})

    assert caught.value.status == 500


async def test_bad_request_is_permanent(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="bad_request"))

    with pytest.raises(PermanentError) as caught:
        await salesforce.find_person("x@y.example")

    assert caught.value.status == 400


async def test_hang_past_the_timeout_is_retryable(
    salesforce: SalesforceConnector, org: EmulatorServer
) -> None:
    org.emulator.inject(Fault(kind="hang", hang_s=5))

    with pytest.raises(RetryableError, match="did not answer within 0.5s"):
        await salesforce.find_person("x@y.example")


async def test_a_wrong_token_is_permanent_and_not_quoted(
    org: EmulatorServer, tls_files: TlsFiles
) -> None:
    settings = SalesforceSettings(
        instance_url=org.base_url,
        access_token=SecretStr("wrong-token"),
        ca_file=tls_files.ca_file,
    )
    async with SalesforceConnector(settings) as connector:
        with pytest.raises(PermanentError, match="INVALID_SESSION_ID") as caught:
            await connector.find_person("x@y.example")

    assert "wrong-token" not in repr(caught.value)


async def test_an_untrusted_certificate_is_permanent(org: EmulatorServer) -> None:
    settings = SalesforceSettings(
        instance_url=org.base_url, access_token=SecretStr(TOKEN)
    )
    async with SalesforceConnector(settings) as connector:
        with pytest.raises(PermanentError, match="TLS certificate"):
            await connector.find_person("x@y.example")
