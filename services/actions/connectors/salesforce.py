"""Salesforce through simple-salesforce, whose blocking calls run in worker threads.

Each worker thread keeps its own `Salesforce` client and `requests` session (the
library is synchronous and a session is not meant to be shared between
threads); the event loop only awaits the thread's result. Authentication is an
OAuth access token for `instance_url` (`SIGNALFLOW_SALESFORCE_ACCESS_TOKEN`);
`ca_file` makes the client trust a private CA, such as the local emulator's.

simple-salesforce's exceptions carry no response headers, so each thread's
session remembers the last Retry-After it saw for the translation to use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import requests
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict
from simple_salesforce.api import Salesforce, SFType
from simple_salesforce.exceptions import SalesforceError
from simple_salesforce.format import format_soql

from services.actions.connectors.crm import (
    CrmRecord,
    CrmRef,
    CrmUpsert,
    CrmUser,
    TaskSpec,
    normalize_domain,
)
from services.actions.connectors.http import parse_retry_after
from services.actions.connectors.limits import CallLimiter
from services.actions.connectors.settings import ConnectorSettings
from services.actions.errors import (
    ActionError,
    PermanentError,
    RetryableError,
    error_for_status,
    scrub_secrets,
)
from signalflow.emulators import demo

logger = logging.getLogger(__name__)

VENDOR = "salesforce"
PERSON_TYPES = ("Contact", "Lead")
PERSON_FIELDS = ("Id", "FirstName", "LastName", "Email", "Title", "OwnerId")
PRIORITIES = {"low": "Low", "normal": "Normal", "high": "High"}
T = TypeVar("T")


class SalesforceSettings(ConnectorSettings):
    """Where the org is and how to authenticate (`SIGNALFLOW_SALESFORCE_*`)."""

    model_config = SettingsConfigDict(
        env_prefix="SIGNALFLOW_SALESFORCE_", extra="ignore"
    )

    instance_url: str = Field(
        default=f"https://{demo.DEMO_HOST}:{demo.SALESFORCE.port}",
        description="The org's URL, e.g. https://acme.my.salesforce.com.",
    )
    access_token: SecretStr = Field(
        default=SecretStr(demo.SALESFORCE.token),
        description="An OAuth access token (session id) for the org.",
    )
    api_version: str = Field(default="59.0", pattern=r"^\d+\.\d$")
    ca_file: Path | None = Field(
        default=None,
        description="PEM CA bundle to verify the org with instead of the system's; "
        "left unset for the local demo emulator, its CA is used.",
    )

    @model_validator(mode="after")
    def _trust_the_demo_emulator(self) -> SalesforceSettings:
        if self.ca_file is None:
            url = urlsplit(self.instance_url)
            host, port = url.hostname or "", url.port
            self.ca_file = demo.demo_ca_if_local(host, port, demo.SALESFORCE)
        return self


class _HttpSession(requests.Session):
    """A session with a default timeout that remembers the last Retry-After."""

    def __init__(self, *, timeout_s: float, ca_file: Path | None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.last_retry_after: str | None = None
        self.ca_file = str(ca_file) if ca_file is not None else None

    # Only adds defaults, so it keeps the parent's full signature by forwarding.
    def request(  # type: ignore[override]
        self, method: str, url: str, *args: Any, **kwargs: Any
    ) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        if self.ca_file is not None:
            # Per request, because REQUESTS_CA_BUNDLE would override session.verify.
            kwargs.setdefault("verify", self.ca_file)
        self.last_retry_after = None
        response = super().request(method, url, *args, **kwargs)
        self.last_retry_after = response.headers.get("Retry-After")
        return response


class SalesforceConnector:
    """The CRM operations on a Salesforce org (satisfies `CrmConnector`).

    People are Contacts or Leads found by e-mail; accounts are found by the
    domain of their Website. Use as `async with`; `close()` waits for calls
    running in worker threads to finish.
    """

    def __init__(self, settings: SalesforceSettings | None = None) -> None:
        self.settings = settings or SalesforceSettings()
        self.limiter = CallLimiter(
            VENDOR,
            max_concurrency=self.settings.max_concurrency,
            rate_per_s=self.settings.rate_per_s,
        )
        self._executor: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._sessions: list[_HttpSession] = []
        self._sessions_lock = threading.Lock()

    async def __aenter__(self) -> SalesforceConnector:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def start(self) -> None:
        """Create the worker threads' pool; refuses to start twice."""
        if self._executor is not None:
            raise RuntimeError("the Salesforce connector is already started")
        self._executor = ThreadPoolExecutor(
            max_workers=self.settings.max_concurrency,
            thread_name_prefix="salesforce",
        )

    async def close(self) -> None:
        """Wait for running calls to finish, then stop the worker threads and
        close their connections."""
        executor, self._executor = self._executor, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, wait=True)
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()

    # -- people ------------------------------------------------------------------

    async def find_person(self, email: str) -> CrmRecord | None:
        """The Contact with this e-mail, else the unconverted Lead, else None."""
        for sobject in PERSON_TYPES:
            record = await self._find_person_of_type(sobject, email)
            if record is not None:
                return record
        return None

    async def _find_person_of_type(self, sobject: str, email: str) -> CrmRecord | None:
        fields = list(PERSON_FIELDS)
        fields.append("AccountId" if sobject == "Contact" else "Company")
        where = "Email = {}" + (" AND IsConverted = false" if sobject == "Lead" else "")
        soql = format_soql(
            f"SELECT {', '.join(fields)} FROM {sobject} WHERE {where} LIMIT 1", email
        )
        rows = await self._query(soql)
        return _record(sobject, rows[0]) if rows else None

    async def upsert_person(
        self, email: str, fields: dict[str, Any], *, object_type: str | None = None
    ) -> CrmUpsert:
        """Update the Contact or Lead with this e-mail, or create one.

        A new record is a `object_type` (Contact by default; a Lead needs
        `Company`). Raises PermanentError for another type and for data the
        org rejects (a missing required field, a bad reference).
        """
        sobject = object_type or "Contact"
        if sobject not in PERSON_TYPES:
            raise PermanentError(
                f"expected a person type from {PERSON_TYPES}, got {sobject!r}",
                vendor=VENDOR,
            )
        existing = await self.find_person(email)
        if existing is not None:
            await self.update_fields(existing.ref, fields)
            merged = {**existing.fields, **fields}
            return CrmUpsert(CrmRecord(existing.ref, merged), created=False)

        values = {**fields, "Email": email}
        created = await self._call(lambda sf: _sobject(sf, sobject).create(values))
        record_id = str(created["id"])
        logger.info("created Salesforce %s %s", sobject, record_id)
        return CrmUpsert(
            CrmRecord(CrmRef(sobject, record_id), {"Id": record_id, **values}),
            created=True,
        )

    # -- accounts ----------------------------------------------------------------

    async def find_account_by_domain(self, domain: str) -> CrmRecord | None:
        """The Account whose Website is on `domain` (ignoring scheme and www)."""
        try:
            wanted = normalize_domain(domain)
        except ValueError as exc:
            raise PermanentError(str(exc), vendor=VENDOR) from exc
        soql = format_soql(
            "SELECT Id, Name, Website, OwnerId FROM Account "
            "WHERE Website LIKE '%{:like}%' LIMIT 50",
            wanted,
        )
        for row in await self._query(soql):
            if _website_domain(row.get("Website")) == wanted:
                return _record("Account", row)
        return None

    async def create_account(self, *, name: str, domain: str) -> CrmRef:
        """Create an Account with this Name and its Website on `domain`."""
        values = {"Name": name, "Website": domain}
        created = await self._call(lambda sf: _sobject(sf, "Account").create(values))
        account_id = str(created["id"])
        logger.info("created Salesforce Account %s for %s", account_id, domain)
        return CrmRef("Account", account_id)

    async def link_person_to_account(self, person: CrmRef, account: CrmRef) -> None:
        """Set the Contact's AccountId. A Lead has no account until converted,
        so linking one is a PermanentError."""
        if person.object_type != "Contact":
            raise PermanentError(
                "only a Contact can be linked to an Account (convert the Lead "
                f"first), got {person.object_type!r}",
                vendor=VENDOR,
            )
        await self.update_fields(person, {"AccountId": account.id})

    # -- fields, tasks, owners ---------------------------------------------------

    async def update_fields(self, ref: CrmRef, fields: dict[str, Any]) -> None:
        """PATCH the record's fields; an empty `fields` does nothing."""
        if not fields:
            return
        await self._call(
            lambda sf: _sobject(sf, ref.object_type).update(ref.id, fields)
        )

    async def create_task(self, task: TaskSpec) -> CrmRef:
        """Create a Task, tied to the person (WhoId) and account (WhatId)."""
        values: dict[str, Any] = {
            "Subject": task.subject,
            "Description": task.body,
            "Status": "Not Started",
            "Priority": PRIORITIES[task.priority],
        }
        if task.due is not None:
            values["ActivityDate"] = task.due.isoformat()
        if task.owner_id is not None:
            values["OwnerId"] = task.owner_id
        if task.person is not None:
            values["WhoId"] = task.person.id
        if task.account is not None:
            values["WhatId"] = task.account.id
        created = await self._call(lambda sf: _sobject(sf, "Task").create(values))
        return CrmRef("Task", str(created["id"]))

    async def get_owner(self, ref: CrmRef) -> CrmUser | None:
        """The User in the record's OwnerId, or None when it has none."""
        record = await self._call(lambda sf: _sobject(sf, ref.object_type).get(ref.id))
        owner_id = record.get("OwnerId")
        if not owner_id:
            return None
        user = await self._call(lambda sf: _sobject(sf, "User").get(owner_id))
        return _user(user)

    async def assign_owner(self, ref: CrmRef, owner_id: str) -> None:
        """Set OwnerId; an id that is not a User is a PermanentError."""
        await self.update_fields(ref, {"OwnerId": owner_id})

    async def find_user_by_email(self, email: str) -> CrmUser | None:
        """The active User with this e-mail address, or None."""
        soql = format_soql(
            "SELECT Id, Name, Email FROM User WHERE Email = {} AND IsActive = true "
            "LIMIT 1",
            email,
        )
        rows = await self._query(soql)
        return _user(rows[0]) if rows else None

    async def read(self, ref: CrmRef) -> CrmRecord:
        """Every field of one record."""
        row = await self._call(lambda sf: _sobject(sf, ref.object_type).get(ref.id))
        return _record(ref.object_type, row)

    # -- the thread boundary -----------------------------------------------------

    async def _query(self, soql: str) -> list[dict[str, Any]]:
        result = await self._call(lambda sf: sf.query(soql))
        records: list[dict[str, Any]] = result.get("records", [])
        return records

    async def _call(self, operation: Callable[[Salesforce], T]) -> T:
        if self._executor is None:
            raise RuntimeError("the Salesforce connector is not started")
        executor = self._executor
        loop = asyncio.get_running_loop()
        async with self.limiter.slot():
            return await loop.run_in_executor(executor, self._run, operation)

    def _run(self, operation: Callable[[Salesforce], T]) -> T:
        client, session = self._thread_client()
        try:
            return operation(client)
        except SalesforceError as exc:
            # Chained without its frames: they hold the response and with it a
            # pooled connection, which would outlive close() with the error.
            error = self._translate_answer(exc, session.last_retry_after)
            raise error from exc.with_traceback(None)
        except requests.Timeout as exc:
            raise RetryableError(
                f"salesforce did not answer within {self.settings.timeout_s}s",
                vendor=VENDOR,
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise PermanentError(
                f"cannot verify salesforce's TLS certificate at "
                f"{self.settings.instance_url!r}",
                vendor=VENDOR,
            ) from exc
        except requests.ConnectionError as exc:
            raise RetryableError(
                f"could not reach salesforce at {self.settings.instance_url!r}",
                vendor=VENDOR,
            ) from exc
        except requests.RequestException as exc:
            raise PermanentError(
                f"salesforce request failed: {type(exc).__name__}", vendor=VENDOR
            ) from exc

    def _thread_client(self) -> tuple[Salesforce, _HttpSession]:
        client: Salesforce | None = getattr(self._local, "client", None)
        if client is None:
            session = _HttpSession(
                timeout_s=self.settings.timeout_s, ca_file=self.settings.ca_file
            )
            client = Salesforce(
                instance_url=self.settings.instance_url,
                session_id=self.settings.access_token.get_secret_value(),
                version=self.settings.api_version,
                session=session,
            )
            self._local.client = client
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return client, self._local.session

    def _translate_answer(
        self, exc: SalesforceError, retry_after: str | None
    ) -> ActionError:
        status = int(exc.status)
        code, detail = _error_detail(exc.content)
        detail = scrub_secrets(detail, [self.settings.access_token.get_secret_value()])
        retry_after_s = parse_retry_after(retry_after)
        if status == 429 and retry_after_s is not None:
            self.limiter.back_off(retry_after_s)
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            # Salesforce signals an exhausted API allowance with 403, not 429.
            return RetryableError(
                f"salesforce answered HTTP 403: {detail}",
                vendor=VENDOR,
                status=status,
                retry_after_s=retry_after_s,
            )
        return error_for_status(VENDOR, status, detail, retry_after_s=retry_after_s)


def _sobject(client: Salesforce, name: str) -> SFType:
    return cast(SFType, getattr(client, name))


def _error_detail(content: Any) -> tuple[str | None, str]:
    """(errorCode, "CODE: message") from Salesforce's error array."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        first = content[0]
        code = first.get("errorCode")
        return code, f"{code}: {first.get('message', '')}"
    text = (
        content.decode("utf-8", "replace")
        if isinstance(content, bytes)
        else str(content)
    )
    return None, text[:200]


def _record(sobject: str, row: dict[str, Any]) -> CrmRecord:
    fields = {k: v for k, v in row.items() if k != "attributes"}
    return CrmRecord(CrmRef(sobject, str(row["Id"])), fields)


def _user(row: dict[str, Any]) -> CrmUser:
    return CrmUser(id=str(row["Id"]), email=row.get("Email"), name=row.get("Name"))


def _website_domain(website: Any) -> str | None:
    if not website:
        return None
    try:
        return normalize_domain(str(website))
    except ValueError:
        return None
