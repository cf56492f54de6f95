"""Salesloft API v2 emulator: people, cadences, cadence memberships, users.

Under `/v2`:

- `people`: list (`email_addresses[]`, `ids[]`), create, get, `PUT` update
  (with `owner_id` and `custom_fields`, merged);
- `cadences`: list (`name`, `ids[]`), get;
- `cadence_memberships`: list (`person_id`, `cadence_id`,
  `currently_on_cadence`), create (`person_id`, `cadence_id`, optional
  `user_id`, from the query string or the body), get, delete (removes the
  person from the cadence);
- `users` and `me`.

Lists answer `{"metadata": {"paging": ...}, "data": [...]}`, single resources
`{"data": {...}}`. Validation failures are 422 with
`{"errors": {"field": ["message"]}}`, other errors `{"error": "..."}`.
"""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalflow.emulators.base import Emulator, json_body, request_params

PERSON_FIELDS = frozenset(
    {"email_address", "first_name", "last_name", "title", "phone", "city"}
    | {"owner_id", "custom_fields", "account_id", "tags"}
)
DEMO_USERS = (
    ("Avery", "Admin", "avery.admin@example.com"),
    ("Sam", "Seller", "sam.seller@example.com"),
    ("Riley", "Rep", "riley.rep@example.com"),
)
DEMO_CADENCES = ("Funding follow-up", "New hire welcome", "Re-engage champions")


class SalesloftApiError(Exception):
    """A request the emulated team refuses."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body

    def response(self) -> Response:
        return JSONResponse(self.body, status_code=self.status)


def _invalid(field: str, message: str) -> SalesloftApiError:
    return SalesloftApiError(422, {"errors": {field: [message]}})


def _not_found() -> SalesloftApiError:
    return SalesloftApiError(404, {"error": "Not Found"})


class SalesloftEmulator(Emulator):
    """A Salesloft team in memory: users, cadences, people and memberships.

    Seeded with three users (the first owns the API key) and three cadences.
    """

    name: ClassVar[str] = "salesloft"
    api_root: ClassVar[str] = "/v2"

    def __init__(self, *, token: str | None = None) -> None:
        super().__init__(token=token)
        self.users: dict[int, dict[str, Any]] = {}
        self.cadences: dict[int, dict[str, Any]] = {}
        self.people: dict[int, dict[str, Any]] = {}
        self.memberships: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1001)
        for first, last, email in DEMO_USERS:
            user_id = next(self._ids)
            self.users[user_id] = {
                "id": user_id,
                "guid": f"user-guid-{user_id}",
                "name": f"{first} {last}",
                "first_name": first,
                "last_name": last,
                "email": email,
                "active": True,
            }
        self.api_user_id = min(self.users)
        for name in DEMO_CADENCES:
            cadence_id = next(self._ids)
            self.cadences[cadence_id] = {
                "id": cadence_id,
                "name": name,
                "team_cadence": True,
                "shared": True,
                "archived_at": None,
                "people_addable": True,
                "owner": self._ref("users", self.api_user_id),
            }

    # -- HTTP ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v2/people", self._people, methods=["GET", "POST"]),
            Route("/v2/people/{item_id:int}", self._person, methods=["GET", "PUT"]),
            Route("/v2/cadences", self._cadences, methods=["GET"]),
            Route("/v2/cadences/{item_id:int}", self._cadence, methods=["GET"]),
            Route(
                "/v2/cadence_memberships", self._memberships, methods=["GET", "POST"]
            ),
            Route(
                "/v2/cadence_memberships/{item_id:int}",
                self._membership,
                methods=["GET", "DELETE"],
            ),
            Route("/v2/users", self._users, methods=["GET"]),
            Route("/v2/me", self._me, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str) -> Response:
        return JSONResponse({"error": message}, status_code=status)

    def unauthorized_response(self) -> Response:
        return JSONResponse({"error": "Unauthorized"}, status_code=401)

    async def _people(self, request: Request) -> Response:
        if request.method == "GET":
            emails = {e.lower() for e in _list_param(request, "email_addresses")}
            ids = {int(i) for i in _list_param(request, "ids")}
            rows = [
                p
                for p in self.people.values()
                if (not emails or p["email_address"].lower() in emails)
                and (not ids or p["id"] in ids)
            ]
            return _page(request, rows)
        try:
            person = self._create_person(await _object(request))
        except SalesloftApiError as error:
            return error.response()
        return JSONResponse({"data": person})

    async def _person(self, request: Request) -> Response:
        person = self.people.get(request.path_params["item_id"])
        if person is None:
            return _not_found().response()
        if request.method == "PUT":
            try:
                self._update_person(person, await _object(request))
            except SalesloftApiError as error:
                return error.response()
        return JSONResponse({"data": person})

    async def _cadences(self, request: Request) -> Response:
        name = request.query_params.get("name")
        ids = {int(i) for i in _list_param(request, "ids")}
        rows = [
            c
            for c in self.cadences.values()
            if (name is None or c["name"].lower() == name.lower())
            and (not ids or c["id"] in ids)
        ]
        return _page(request, rows)

    async def _cadence(self, request: Request) -> Response:
        cadence = self.cadences.get(request.path_params["item_id"])
        if cadence is None:
            return _not_found().response()
        return JSONResponse({"data": cadence})

    async def _memberships(self, request: Request) -> Response:
        if request.method == "POST":
            try:
                membership = self._create_membership(await request_params(request))
            except SalesloftApiError as error:
                return error.response()
            return JSONResponse({"data": membership})
        query = request.query_params
        rows = [
            m
            for m in self.memberships.values()
            if _equal_param(query.get("person_id"), m["person"]["id"])
            and _equal_param(query.get("cadence_id"), m["cadence"]["id"])
            and _equal_param(
                query.get("currently_on_cadence"), m["currently_on_cadence"]
            )
        ]
        return _page(request, rows)

    async def _membership(self, request: Request) -> Response:
        membership = self.memberships.get(request.path_params["item_id"])
        if membership is None:
            return _not_found().response()
        if request.method == "DELETE":
            membership.update(
                currently_on_cadence=False,
                current_state="removed",
                updated_at=_timestamp(),
            )
            return Response(status_code=204)
        return JSONResponse({"data": membership})

    async def _users(self, request: Request) -> Response:
        return _page(request, list(self.users.values()))

    async def _me(self, request: Request) -> Response:
        return JSONResponse({"data": self.users[self.api_user_id]})

    # -- writes ----------------------------------------------------------------------

    def _create_person(self, fields: dict[str, Any]) -> dict[str, Any]:
        email = fields.get("email_address")
        if not email:
            raise _invalid("email_address", "can't be blank")
        self._check_person_fields(fields, own_id=None)
        person_id = next(self._ids)
        now = _timestamp()
        person: dict[str, Any] = {
            "id": person_id,
            "created_at": now,
            "updated_at": now,
            "email_address": email,
            "first_name": None,
            "last_name": None,
            "title": None,
            "custom_fields": {},
            "owner": self._ref("users", self.api_user_id),
        }
        self.people[person_id] = person
        self._apply(person, fields)
        return person

    def _update_person(self, person: dict[str, Any], fields: dict[str, Any]) -> None:
        self._check_person_fields(fields, own_id=person["id"])
        self._apply(person, fields)
        person["updated_at"] = _timestamp()

    def _check_person_fields(
        self, fields: dict[str, Any], *, own_id: int | None
    ) -> None:
        unknown = sorted(set(fields) - PERSON_FIELDS)
        if unknown:
            raise _invalid(unknown[0], "is not a known attribute")
        email = fields.get("email_address")
        if email is not None and not re.fullmatch(
            r"[^@\s]+@[^@\s]+\.[^@\s]+", str(email)
        ):
            raise _invalid("email_address", "is invalid")
        if email is not None:
            for person in self.people.values():
                if (
                    person["id"] != own_id
                    and person["email_address"].lower() == str(email).lower()
                ):
                    raise _invalid("email_address", "has already been taken")
        owner_id = fields.get("owner_id")
        if owner_id is not None and _as_int(owner_id) not in self.users:
            raise _invalid("owner_id", "must be an active user")
        custom = fields.get("custom_fields")
        if custom is not None and not isinstance(custom, dict):
            raise _invalid("custom_fields", "must be an object")

    def _apply(self, person: dict[str, Any], fields: dict[str, Any]) -> None:
        for name, value in fields.items():
            if name == "owner_id":
                person["owner"] = self._ref("users", _as_int(value))
            elif name == "custom_fields":
                person["custom_fields"] = {**person["custom_fields"], **value}
            else:
                person[name] = value

    def _create_membership(self, params: dict[str, Any]) -> dict[str, Any]:
        person_id = _as_int(params.get("person_id"))
        cadence_id = _as_int(params.get("cadence_id"))
        user_id = (
            _as_int(params.get("user_id"))
            if params.get("user_id")
            else self.api_user_id
        )
        if person_id not in self.people:
            raise _invalid("person_id", "must exist")
        if cadence_id not in self.cadences:
            raise _invalid("cadence_id", "must exist")
        if user_id not in self.users:
            raise _invalid("user_id", "must be an active user")
        for membership in self.memberships.values():
            same = (membership["person"]["id"], membership["cadence"]["id"]) == (
                person_id,
                cadence_id,
            )
            if same and membership["currently_on_cadence"]:
                raise _invalid("person_id", "is already on this cadence")
        membership_id = next(self._ids)
        now = _timestamp()
        membership = {
            "id": membership_id,
            "added_at": now,
            "created_at": now,
            "updated_at": now,
            "person_deleted": False,
            "currently_on_cadence": True,
            "current_state": "staged",
            "cadence": self._ref("cadences", cadence_id),
            "person": self._ref("people", person_id),
            "user": self._ref("users", user_id),
            "latest_action": None,
            "counts": {
                "views": 0,
                "clicks": 0,
                "replies": 0,
                "calls": 0,
                "sent_emails": 0,
                "bounces": 0,
            },
        }
        self.memberships[membership_id] = membership
        return membership

    def _ref(self, collection: str, item_id: int) -> dict[str, Any]:
        return {
            "_href": f"https://api.salesloft.com/v2/{collection}/{item_id}",
            "id": item_id,
        }


async def _object(request: Request) -> dict[str, Any]:
    document = await json_body(request)
    if not isinstance(document, dict):
        raise SalesloftApiError(400, {"error": "expected a JSON object body"})
    return document


def _list_param(request: Request, name: str) -> list[str]:
    values = request.query_params.getlist(f"{name}[]") + request.query_params.getlist(
        name
    )
    return [v for value in values for v in value.split(",") if v]


def _page(request: Request, rows: list[dict[str, Any]]) -> Response:
    per_page = int(request.query_params.get("per_page", "25"))
    page = int(request.query_params.get("page", "1"))
    start = (page - 1) * per_page
    has_next = start + per_page < len(rows)
    metadata = {
        "filtering": {},
        "paging": {
            "per_page": per_page,
            "current_page": page,
            "next_page": page + 1 if has_next else None,
            "prev_page": page - 1 if page > 1 else None,
        },
        "sorting": {"sort_by": "updated_at", "sort_direction": "DESC"},
    }
    return JSONResponse({"metadata": metadata, "data": rows[start : start + per_page]})


def _equal_param(expected: str | None, actual: Any) -> bool:
    if expected is None:
        return True
    if isinstance(actual, bool):
        return expected.lower() == str(actual).lower()
    return expected == str(actual)


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise _invalid("id", f"must be an integer, got {value!r}") from exc


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
