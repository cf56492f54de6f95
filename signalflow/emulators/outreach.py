"""Outreach API v2 emulator: JSON:API resources for prospects and sequences.

Under `/api/v2`, with `application/vnd.api+json` bodies:

- `prospects`: list (`filter[emails]`, `filter[id]`), get, create, update;
- `sequences`: list (`filter[name]`, `filter[id]`), get;
- `sequenceStates`: list (`filter[prospect][id]`, `filter[sequence][id]`,
  `filter[state]`), create (enroll: prospect, sequence and mailbox
  relationships), get, delete, and `POST .../{id}/actions/finish`;
- `users` (`filter[email]`) and `mailboxes` (`filter[user][id]`).

Filter values separated by commas match any of them. Errors use the JSON:API
shape `{"errors": [{"id", "title", "detail"}]}`; a write without the JSON:API
content type is 415, a duplicate prospect e-mail or a second active state in
one sequence is 422.
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

JSON_API = "application/vnd.api+json"
PLURALS = {
    "prospects": "prospect",
    "sequences": "sequence",
    "sequenceStates": "sequenceState",
    "users": "user",
    "mailboxes": "mailbox",
}
PROSPECT_ATTRIBUTES = frozenset(
    {"emails", "firstName", "lastName", "title", "company", "tags"}
    | {f"custom{n}" for n in range(1, 151)}
)
ACTIVE_STATES = frozenset({"active", "pending", "paused"})
DEMO_USERS = (
    ("Avery", "Admin", "avery.admin@example.com"),
    ("Sam", "Seller", "sam.seller@example.com"),
    ("Riley", "Rep", "riley.rep@example.com"),
)
DEMO_SEQUENCES = ("Funding follow-up", "New hire welcome", "Re-engage champions")


class OutreachApiError(Exception):
    """A request the emulated Outreach refuses, in JSON:API's error shape."""

    def __init__(self, status: int, code: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail

    def response(self) -> Response:
        return jsonapi_error(self.status, self.code, self.title, self.detail)


def jsonapi_error(status: int, code: str, title: str, detail: str) -> Response:
    """An error document as Outreach answers it."""
    body = {"errors": [{"id": code, "title": title, "detail": detail}]}
    return JSONResponse(body, status_code=status, media_type=JSON_API)


class OutreachEmulator(Emulator):
    """An Outreach org in memory: users with mailboxes, sequences, prospects.

    Seeded with three users (each with a mailbox) and three enabled sequences.
    """

    name: ClassVar[str] = "outreach"
    api_root: ClassVar[str] = "/api/v2"

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__(token=token)
        self.store: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in PLURALS}
        self._ids = {t: itertools.count(1) for t in PLURALS}
        for first, last, email in DEMO_USERS:
            user_id = self.insert(
                "users", {"firstName": first, "lastName": last, "email": email}
            )
            self.insert("mailboxes", {"email": email}, user=("user", user_id))
        for name in DEMO_SEQUENCES:
            self.insert("sequences", {"name": name, "enabled": True})

    # -- in-process API --------------------------------------------------------

    def insert(
        self,
        plural: str,
        attributes: dict[str, Any],
        **relationships: tuple[str, int] | None,
    ) -> int:
        """Store a resource without validation and return its id."""
        resource_id = next(self._ids[plural])
        now = _timestamp()
        self.store[plural][resource_id] = {
            "attributes": {**attributes, "createdAt": now, "updatedAt": now},
            "relationships": dict(relationships),
        }
        return resource_id

    def states_of(self, prospect_id: int) -> list[dict[str, Any]]:
        """Every sequence state of a prospect, as stored."""
        return [
            {"id": state_id, **state}
            for state_id, state in self.store["sequenceStates"].items()
            if state["relationships"]["prospect"] == ("prospect", prospect_id)
        ]

    # -- HTTP ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        root = self.api_root
        return [
            Route(
                f"{root}/sequenceStates/{{resource_id:int}}/actions/finish",
                self._finish,
                methods=["POST"],
            ),
            Route(f"{root}/{{plural}}", self._collection, methods=["GET", "POST"]),
            Route(
                f"{root}/{{plural}}/{{resource_id:int}}",
                self._member,
                methods=["GET", "PATCH", "DELETE"],
            ),
        ]

    def error_response(self, status: int, message: str) -> Response:
        codes = {
            429: "rateLimitExceeded",
            400: "badRequest",
            500: "internalServerError",
        }
        code = codes.get(status, "serverError")
        return jsonapi_error(status, code, message.capitalize(), message)

    def unauthorized_response(self) -> Response:
        return jsonapi_error(
            401,
            "unauthorizedOauthToken",
            "Unauthorized OAuth Token",
            "The OAuth token is invalid or expired.",
        )

    async def _collection(self, request: Request) -> Response:
        try:
            plural = self._known(request.path_params["plural"])
            if request.method == "GET":
                return self._document(self._list(plural, request))
            if plural == "prospects":
                return self._document(
                    self._created(plural, await self._create_prospect(request)), 201
                )
            if plural == "sequenceStates":
                return self._document(
                    self._created(plural, await self._create_state(request)), 201
                )
            raise OutreachApiError(
                405,
                "methodNotAllowed",
                "Method Not Allowed",
                f"{plural} cannot be created here",
            )
        except OutreachApiError as error:
            return error.response()

    async def _member(self, request: Request) -> Response:
        try:
            plural = self._known(request.path_params["plural"])
            resource_id = request.path_params["resource_id"]
            stored = self._existing(plural, resource_id)
            if request.method == "GET":
                return self._document(self._serialize(plural, resource_id, stored))
            if request.method == "DELETE" and plural == "sequenceStates":
                del self.store[plural][resource_id]
                return Response(status_code=204)
            if request.method == "PATCH" and plural == "prospects":
                await self._update_prospect(request, resource_id, stored)
                return self._document(self._serialize(plural, resource_id, stored))
            raise OutreachApiError(
                405,
                "methodNotAllowed",
                "Method Not Allowed",
                f"{request.method} is not allowed on {plural}",
            )
        except OutreachApiError as error:
            return error.response()

    async def _finish(self, request: Request) -> Response:
        resource_id = request.path_params["resource_id"]
        try:
            stored = self._existing("sequenceStates", resource_id)
        except OutreachApiError as error:
            return error.response()
        stored["attributes"]["state"] = "finished"
        stored["attributes"]["updatedAt"] = _timestamp()
        return self._document(self._serialize("sequenceStates", resource_id, stored))

    # -- reads -----------------------------------------------------------------------

    def _list(self, plural: str, request: Request) -> list[dict[str, Any]]:
        filters = _filters(request)
        size = int(request.query_params.get("page[size]", "50"))
        rows = [
            self._serialize(plural, resource_id, stored)
            for resource_id, stored in self.store[plural].items()
            if all(
                _matches(resource_id, stored, path, values) for path, values in filters
            )
        ]
        return rows[:size]

    def _document(self, data: Any, status: int = 200) -> Response:
        body: dict[str, Any] = {"data": data}
        if isinstance(data, list):
            body["meta"] = {"count": len(data)}
        return JSONResponse(body, status_code=status, media_type=JSON_API)

    def _serialize(
        self, plural: str, resource_id: int, stored: dict[str, Any]
    ) -> dict[str, Any]:
        relationships = {
            name: {"data": {"type": ref[0], "id": ref[1]} if ref else None}
            for name, ref in stored["relationships"].items()
        }
        return {
            "type": PLURALS[plural],
            "id": resource_id,
            "attributes": dict(stored["attributes"]),
            "relationships": relationships,
            "links": {"self": f"{self.api_root}/{plural}/{resource_id}"},
        }

    def _created(self, plural: str, resource_id: int) -> dict[str, Any]:
        return self._serialize(plural, resource_id, self.store[plural][resource_id])

    # -- writes ----------------------------------------------------------------------

    async def _create_prospect(self, request: Request) -> int:
        data = await _resource(request, "prospect")
        attributes = self._prospect_attributes(data.get("attributes") or {})
        emails = attributes.get("emails") or []
        self._refuse_duplicate_emails(emails, own_id=None)
        owner = self._relationship(data, "owner", "users", required=False)
        return self.insert("prospects", attributes, owner=owner)

    async def _update_prospect(
        self, request: Request, resource_id: int, stored: dict[str, Any]
    ) -> None:
        data = await _resource(request, "prospect")
        if str(data.get("id")) != str(resource_id):
            raise OutreachApiError(
                409,
                "conflict",
                "Conflict",
                f"data.id {data.get('id')!r} does not match the URL's {resource_id}",
            )
        attributes = self._prospect_attributes(data.get("attributes") or {})
        if "emails" in attributes:
            self._refuse_duplicate_emails(attributes["emails"], own_id=resource_id)
        stored["attributes"].update(attributes, updatedAt=_timestamp())
        if "owner" in (data.get("relationships") or {}):
            stored["relationships"]["owner"] = self._relationship(
                data, "owner", "users", required=False
            )

    async def _create_state(self, request: Request) -> int:
        data = await _resource(request, "sequenceState")
        prospect = self._required(data, "prospect", "prospects")
        sequence = self._required(data, "sequence", "sequences")
        mailbox = self._required(data, "mailbox", "mailboxes")
        if not self.store["sequences"][sequence[1]]["attributes"].get("enabled"):
            raise _validation(f"Sequence {sequence[1]} is not enabled")
        for state in self.states_of(prospect[1]):
            same = state["relationships"]["sequence"] == sequence
            if same and state["attributes"]["state"] in ACTIVE_STATES:
                raise _validation("The prospect is already active in this sequence")
        return self.insert(
            "sequenceStates",
            {"state": "active", "stepOverrides": False},
            prospect=prospect,
            sequence=sequence,
            mailbox=mailbox,
        )

    def _prospect_attributes(self, attributes: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(attributes) - PROSPECT_ATTRIBUTES)
        if unknown:
            raise _validation(f"Unknown attribute {unknown[0]!r} on prospect")
        emails = attributes.get("emails")
        if emails is not None and (
            not isinstance(emails, list)
            or not all(_looks_like_email(e) for e in emails)
        ):
            raise _validation(
                f"emails must be a list of e-mail addresses, got {emails!r}"
            )
        return attributes

    def _refuse_duplicate_emails(
        self, emails: list[str], *, own_id: int | None
    ) -> None:
        wanted = {e.lower() for e in emails}
        for resource_id, stored in self.store["prospects"].items():
            existing = {e.lower() for e in stored["attributes"].get("emails") or []}
            if resource_id != own_id and wanted & existing:
                raise OutreachApiError(
                    422,
                    "validationDuplicateValueError",
                    "Validation Error",
                    "A prospect with this email address already exists.",
                )

    def _required(
        self, data: dict[str, Any], name: str, plural: str
    ) -> tuple[str, int]:
        linkage = self._relationship(data, name, plural, required=True)
        if linkage is None:
            raise _validation(f"The {name} relationship is required")
        return linkage

    def _relationship(
        self, data: dict[str, Any], name: str, plural: str, *, required: bool
    ) -> tuple[str, int] | None:
        linkage = ((data.get("relationships") or {}).get(name) or {}).get("data")
        if linkage is None:
            if required:
                raise _validation(f"The {name} relationship is required")
            return None
        try:
            resource_id = int(linkage.get("id"))
        except (TypeError, ValueError) as exc:
            raise _validation(f"{name} needs a numeric id, got {linkage!r}") from exc
        if (
            linkage.get("type") != PLURALS[plural]
            or resource_id not in self.store[plural]
        ):
            raise _validation(f"{name} {linkage!r} does not exist")
        return (PLURALS[plural], resource_id)

    def _known(self, plural: str) -> str:
        if plural not in PLURALS:
            raise OutreachApiError(
                404,
                "resourceNotFound",
                "Resource Not Found",
                f"No resource type {plural!r}",
            )
        return plural

    def _existing(self, plural: str, resource_id: int) -> dict[str, Any]:
        stored = self.store[plural].get(resource_id)
        if stored is None:
            raise OutreachApiError(
                404,
                "resourceNotFound",
                "Resource Not Found",
                f"Could not find '{PLURALS[plural]}' with ID '{resource_id}'.",
            )
        return stored


async def _resource(request: Request, resource_type: str) -> dict[str, Any]:
    if JSON_API not in request.headers.get("content-type", ""):
        raise OutreachApiError(
            415,
            "unsupportedMediaType",
            "Unsupported Media Type",
            f"expected Content-Type {JSON_API}",
        )
    document = await json_body(request)
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or data.get("type") != resource_type:
        raise OutreachApiError(
            422,
            "validationError",
            "Validation Error",
            f"expected a {resource_type} resource in data",
        )
    return data


def _filters(request: Request) -> list[tuple[list[str], set[str]]]:
    filters = []
    for key, value in request.query_params.items():
        if key.startswith("filter["):
            path = re.findall(r"\[([^\]]+)\]", key)
            filters.append((path, {v.strip().lower() for v in value.split(",")}))
    return filters


def _matches(
    resource_id: int, stored: dict[str, Any], path: list[str], values: set[str]
) -> bool:
    if path == ["id"]:
        return str(resource_id) in values
    if len(path) == 2 and path[1] == "id":
        ref = stored["relationships"].get(path[0])
        return ref is not None and str(ref[1]) in values
    actual = stored["attributes"].get(path[0])
    if isinstance(actual, list):
        return any(str(item).lower() in values for item in actual)
    return actual is not None and str(actual).lower() in values


def _validation(detail: str) -> OutreachApiError:
    return OutreachApiError(422, "validationError", "Validation Error", detail)


def _looks_like_email(value: Any) -> bool:
    return (
        isinstance(value, str)
        and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value) is not None
    )


def _timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
