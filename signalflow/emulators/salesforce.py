"""Salesforce REST API emulator: SOQL query and sobject create, get and update.

Endpoints, under `/services/data/vXX.X/` (with or without a trailing slash):

- `GET query?q=SELECT ...` (and `queryAll`): the subset in `soql`, answered as
  `{"totalSize", "done", "records": [{"attributes": {...}, ...}]}`;
- `POST sobjects/{Type}/`: 201 `{"id", "success": true, "errors": []}`;
- `GET sobjects/{Type}/{id}`: every field, with `attributes`;
- `PATCH sobjects/{Type}/{id}`: 204.

Types are Contact, Lead, Account, Task (writable) and User (read-only). Fields
are checked against each type's standard fields plus any `*__c` custom field;
required fields, e-mail format and references (OwnerId, AccountId, WhoId,
WhatId) are validated. Errors use Salesforce's array shape:
`[{"message": ..., "errorCode": ..., "fields": [...]}]`.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalflow.emulators.base import Emulator, json_body
from signalflow.emulators.soql import SoqlError, parse_soql

_COMMON = {"Id", "OwnerId", "CreatedDate", "LastModifiedDate", "Description"}
FIELDS: dict[str, frozenset[str]] = {
    "Contact": frozenset(
        _COMMON
        | {"FirstName", "LastName", "Name", "Email", "Title", "Phone", "AccountId"}
        | {"LeadSource", "Department", "MobilePhone"}
    ),
    "Lead": frozenset(
        _COMMON
        | {"FirstName", "LastName", "Name", "Email", "Title", "Phone", "Company"}
        | {"Website", "Status", "LeadSource", "IsConverted"}
    ),
    "Account": frozenset(
        _COMMON | {"Name", "Website", "Industry", "NumberOfEmployees", "Phone"}
    ),
    "Task": frozenset(
        _COMMON
        | {"Subject", "ActivityDate", "Status", "Priority", "WhoId", "WhatId"}
        | {"Type"}
    ),
    "User": frozenset(
        {"Id", "Name", "FirstName", "LastName", "Email", "Username", "IsActive"}
    ),
}
READ_ONLY = frozenset({"Id", "Name", "CreatedDate", "LastModifiedDate", "IsConverted"})
# A person's Name is compound (first and last name) and computed; an Account's
# Name is what the account is called, required and written like any field.
WRITABLE_BY_TYPE: dict[str, frozenset[str]] = {"Account": frozenset({"Name"})}
REQUIRED: dict[str, tuple[str, ...]] = {
    "Contact": ("LastName",),
    "Lead": ("LastName", "Company"),
    "Account": ("Name",),
    "Task": (),
}
KEY_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "User": "005",
    "Task": "00T",
    "Lead": "00Q",
}
REFERENCES: dict[str, tuple[str, ...]] = {
    "OwnerId": ("User",),
    "AccountId": ("Account",),
    "WhoId": ("Contact", "Lead"),
    "WhatId": ("Account",),
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CHECKSUM_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

DEMO_USERS = (
    {"FirstName": "Avery", "LastName": "Admin", "Email": "avery.admin@example.com"},
    {"FirstName": "Sam", "LastName": "Seller", "Email": "sam.seller@example.com"},
    {"FirstName": "Riley", "LastName": "Rep", "Email": "riley.rep@example.com"},
)
DEMO_ACCOUNTS = (
    {"Name": "Acme Robotics", "Website": "https://www.acme-robotics.example"},
    {"Name": "Globex", "Website": "globex.example"},
)


class SalesforceApiError(Exception):
    """A request the emulated org rejects, with Salesforce's error code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            body["fields"] = list(self.fields)
        return JSONResponse([body], status_code=self.status)


class SalesforceEmulator(Emulator):
    """An org with Contacts, Leads, Accounts, Tasks and Users, all in memory.

    Seeded with three users (the first is the API user and default owner) and
    two accounts unless `seed_demo=False`.
    """

    name: ClassVar[str] = "salesforce"

    def __init__(self, *, token: str | None = None, seed_demo: bool = True) -> None:
        super().__init__(token=token)
        self.records: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in FIELDS}
        self._ids = itertools.count(1)
        self.api_user_id: str | None = None
        self.api_user_id = self.insert("User", dict(DEMO_USERS[0]))
        if seed_demo:
            for user in DEMO_USERS[1:]:
                self.insert("User", dict(user))
            for account in DEMO_ACCOUNTS:
                self.insert("Account", dict(account))

    # -- in-process API --------------------------------------------------------

    def insert(self, sobject: str, fields: dict[str, Any]) -> str:
        """Store a record without validation and return its new 18-character id."""
        record_id = self._new_id(sobject)
        now = _timestamp()
        record: dict[str, Any] = {"Id": record_id, "CreatedDate": now}
        record["LastModifiedDate"] = now
        record.update(fields)
        if sobject == "User":
            record.setdefault("IsActive", True)
        else:
            record.setdefault("OwnerId", self.api_user_id)
        if sobject == "Lead":
            record.setdefault("IsConverted", False)
        self.records[sobject][record_id] = record
        _refresh_name(sobject, record)
        return record_id

    def find(self, sobject: str, **equal: Any) -> list[dict[str, Any]]:
        """Records of a type whose fields equal the given values."""
        return [
            r
            for r in self.records[sobject].values()
            if all(r.get(k) == v for k, v in equal.items())
        ]

    # -- HTTP ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        base = "/services/data/{version:str}"
        routes: list[BaseRoute] = []
        for slash in ("", "/"):
            routes += [
                Route(f"{base}/query{slash}", self._query, methods=["GET"]),
                Route(f"{base}/queryAll{slash}", self._query, methods=["GET"]),
                Route(
                    f"{base}/sobjects/{{sobject}}{slash}",
                    self._create,
                    methods=["POST"],
                ),
                Route(
                    f"{base}/sobjects/{{sobject}}/{{record_id}}{slash}",
                    self._sobject,
                    methods=["GET", "PATCH"],
                ),
            ]
        return routes

    def error_response(self, status: int, message: str) -> Response:
        codes = {
            429: "REQUEST_LIMIT_EXCEEDED",
            400: "INVALID_FIELD",
            401: "INVALID_SESSION_ID",
        }
        code = codes.get(status, "UNKNOWN_EXCEPTION")
        return SalesforceApiError(status, code, message).response()

    def unauthorized_response(self) -> Response:
        return SalesforceApiError(
            401, "INVALID_SESSION_ID", "Session expired or invalid"
        ).response()

    async def _query(self, request: Request) -> Response:
        try:
            _check_version(request)
            return JSONResponse(self._run_query(request))
        except SalesforceApiError as error:
            return error.response()

    def _run_query(self, request: Request) -> dict[str, Any]:
        text = request.query_params.get("q")
        if not text:
            raise SalesforceApiError(
                400, "MALFORMED_QUERY", "missing query parameter q"
            )
        try:
            query = parse_soql(text)
        except SoqlError as exc:
            raise SalesforceApiError(400, "MALFORMED_QUERY", str(exc)) from exc
        sobject = self._known_type(query.sobject, status=400, code="INVALID_TYPE")
        fields = [_canonical_field(sobject, f) for f in query.fields]
        for condition_group in query.where:
            for condition in condition_group:
                _canonical_field(sobject, condition.field)
        version = request.path_params["version"]
        matched = [r for r in self.records[sobject].values() if query.matches(r)]
        if query.limit is not None:
            matched = matched[: query.limit]
        rows = [_project(sobject, version, r, fields) for r in matched]
        return {"totalSize": len(rows), "done": True, "records": rows}

    async def _create(self, request: Request) -> Response:
        try:
            _check_version(request)
            sobject = self._known_type(request.path_params["sobject"])
            fields = await _fields_from(request)
            record_id = self._create_record(sobject, fields)
        except SalesforceApiError as error:
            return error.response()
        return JSONResponse(
            {"id": record_id, "success": True, "errors": []}, status_code=201
        )

    def _create_record(self, sobject: str, fields: dict[str, Any]) -> str:
        if sobject == "User":
            raise SalesforceApiError(
                400, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "Users are read-only here"
            )
        self._validate_write(sobject, fields)
        missing = tuple(f for f in REQUIRED[sobject] if not fields.get(f))
        if missing:
            raise SalesforceApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        return self.insert(sobject, fields)

    async def _sobject(self, request: Request) -> Response:
        try:
            _check_version(request)
            sobject = self._known_type(request.path_params["sobject"])
            record = self._existing(sobject, request.path_params["record_id"])
            if request.method == "GET":
                version = request.path_params["version"]
                return JSONResponse(_project(sobject, version, record, None))
            fields = await _fields_from(request)
            self._update_record(sobject, record, fields)
        except SalesforceApiError as error:
            return error.response()
        return Response(status_code=204)

    def _update_record(
        self, sobject: str, record: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        if sobject == "User":
            raise SalesforceApiError(
                400, "CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY", "Users are read-only here"
            )
        self._validate_write(sobject, fields)
        cleared = [f for f in REQUIRED[sobject] if f in fields and not fields[f]]
        if cleared:
            raise SalesforceApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(cleared)}]",
                tuple(cleared),
            )
        record.update(fields)
        record["LastModifiedDate"] = _timestamp()
        _refresh_name(sobject, record)

    def _validate_write(self, sobject: str, fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            _writable_field(sobject, name)
            if name in REFERENCES and value is not None:
                self._check_reference(name, value)
        email = fields.get("Email")
        if email is not None and not _EMAIL.match(str(email)):
            raise SalesforceApiError(
                400,
                "INVALID_EMAIL_ADDRESS",
                f"Email: invalid email address: {email}",
                ("Email",),
            )

    def _check_reference(self, field: str, value: Any) -> None:
        targets = REFERENCES[field]
        if any(str(value) in self.records[t] for t in targets):
            return
        raise SalesforceApiError(
            400,
            "INVALID_CROSS_REFERENCE_KEY",
            f"{field}: id value of incorrect type: {value}",
            (field,),
        )

    def _known_type(
        self, sobject: str, *, status: int = 404, code: str = "NOT_FOUND"
    ) -> str:
        for known in FIELDS:
            if known.lower() == sobject.lower():
                return known
        message = f"sObject type '{sobject}' is not supported."
        raise SalesforceApiError(status, code, message)

    def _existing(self, sobject: str, record_id: str) -> dict[str, Any]:
        record = self.records[sobject].get(record_id)
        if record is None:
            raise SalesforceApiError(
                404, "NOT_FOUND", "The requested resource does not exist"
            )
        return record

    def _new_id(self, sobject: str) -> str:
        serial = next(self._ids)
        id15 = f"{KEY_PREFIX[sobject]}5g{serial:010d}"
        return id15 + _checksum(id15)


def _check_version(request: Request) -> None:
    version = request.path_params["version"]
    if not re.fullmatch(r"v\d+\.\d", version):
        raise SalesforceApiError(
            404, "NOT_FOUND", f"The requested resource does not exist: {version}"
        )


async def _fields_from(request: Request) -> dict[str, Any]:
    document = await json_body(request)
    if not isinstance(document, dict):
        raise SalesforceApiError(
            400, "JSON_PARSER_ERROR", "expected a JSON object of field values"
        )
    return document


def _canonical_field(sobject: str, name: str) -> str:
    for known in FIELDS[sobject]:
        if known.lower() == name.lower():
            return known
    if name.endswith("__c") and sobject != "User":
        return name
    raise SalesforceApiError(
        400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'."
    )


def _writable_field(sobject: str, name: str) -> None:
    canonical = _canonical_field(sobject, name)
    writable = WRITABLE_BY_TYPE.get(sobject, frozenset())
    if (canonical in READ_ONLY and canonical not in writable) or canonical != name:
        raise SalesforceApiError(
            400,
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to create/update fields: {name}.",
            (name,),
        )


def _project(
    sobject: str, version: str, record: dict[str, Any], fields: list[str] | None
) -> dict[str, Any]:
    url = f"/services/data/{version}/sobjects/{sobject}/{record['Id']}"
    row: dict[str, Any] = {"attributes": {"type": sobject, "url": url}}
    names = fields if fields is not None else sorted(FIELDS[sobject] | set(record))
    for name in names:
        row[name] = record.get(name)
    return row


def _refresh_name(sobject: str, record: dict[str, Any]) -> None:
    if sobject in ("Contact", "Lead", "User"):
        parts = (record.get("FirstName"), record.get("LastName"))
        record["Name"] = " ".join(p for p in parts if p)


def _checksum(id15: str) -> str:
    suffix = ""
    for start in (0, 5, 10):
        chunk = id15[start : start + 5]
        bits = sum(1 << i for i, char in enumerate(chunk) if char.isupper())
        suffix += _CHECKSUM_CHARS[bits]
    return suffix


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
