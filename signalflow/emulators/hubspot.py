"""HubSpot CRM API emulator: contacts, companies, tasks, owners, associations.

Endpoints, as HubSpot publishes them:

- `POST /crm/v3/objects/{type}/search`: `filterGroups` (OR of AND-ed filters;
  operators EQ, NEQ, IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN),
  `properties`, `limit`, `after`;
- `POST /crm/v3/objects/{type}`: create with `properties` and `associations`;
- `GET|PATCH /crm/v3/objects/{type}/{id}`: read (`?properties=a,b`) and update;
- `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{toId}` and
  `GET /crm/v4/objects/{from}/{id}/associations/{to}`;
- `GET /crm/v3/owners/` (`?email=`) and `GET /crm/v3/owners/{id}`.

Types are contacts, companies and tasks. Property values are stored and returned
as strings, unknown properties are refused (400 VALIDATION_ERROR), a second
contact with the same e-mail is a 409 CONFLICT, and `hubspot_owner_id` must name
an owner. Errors use HubSpot's shape:
`{"status": "error", "message", "correlationId", "category"}`.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from signalflow.emulators.base import Emulator, json_body

PROPERTIES: dict[str, frozenset[str]] = {
    "contacts": frozenset(
        {"email", "firstname", "lastname", "jobtitle", "company", "phone"}
        | {"website", "hubspot_owner_id", "lifecyclestage", "hs_lead_status"}
    ),
    "companies": frozenset(
        {"name", "domain", "industry", "phone", "hubspot_owner_id", "city"}
    ),
    "tasks": frozenset(
        {"hs_timestamp", "hs_task_subject", "hs_task_body", "hs_task_status"}
        | {"hs_task_priority", "hs_task_type", "hubspot_owner_id"}
    ),
}
DEFAULT_PROPERTIES = {
    "contacts": ("email", "firstname", "lastname"),
    "companies": ("domain", "name"),
    "tasks": ("hs_task_subject", "hs_timestamp"),
}
SYSTEM_PROPERTIES = ("createdate", "hs_object_id", "lastmodifieddate")
# HubSpot-defined association type ids for the default (unlabeled) pairs.
ASSOCIATION_TYPES = {
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("tasks", "contacts"): 204,
    ("contacts", "tasks"): 203,
    ("tasks", "companies"): 192,
    ("companies", "tasks"): 191,
}
DEMO_OWNERS = (
    ("Avery", "Admin", "avery.admin@example.com"),
    ("Sam", "Seller", "sam.seller@example.com"),
    ("Riley", "Rep", "riley.rep@example.com"),
)
DEMO_COMPANIES = (
    {"name": "Acme Robotics", "domain": "acme-robotics.example"},
    {"name": "Globex", "domain": "globex.example"},
)


class HubSpotApiError(Exception):
    """A request the emulated portal rejects."""

    def __init__(self, status: int, category: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message

    def response(self) -> JSONResponse:
        return hubspot_error(self.status, self.category, self.message)


def hubspot_error(status: int, category: str, message: str) -> JSONResponse:
    """An error body in HubSpot's shape."""
    return JSONResponse(
        {
            "status": "error",
            "message": message,
            "correlationId": str(uuid.uuid4()),
            "category": category,
        },
        status_code=status,
    )


class HubSpotEmulator(Emulator):
    """A portal with contacts, companies, tasks and owners, all in memory.

    `extra_properties` adds custom properties per object type (the demo adds
    `signalflow_message` to contacts). Seeded with three owners and two
    companies unless `seed_demo=False`.
    """

    name: ClassVar[str] = "hubspot"

    def __init__(
        self,
        *,
        token: str | None = None,
        seed_demo: bool = True,
        extra_properties: dict[str, set[str]] | None = None,
    ) -> None:
        super().__init__(token=token)
        self.objects: dict[str, dict[str, dict[str, Any]]] = {t: {} for t in PROPERTIES}
        self.associations: set[tuple[str, str, str, str]] = set()
        self.owners: dict[str, dict[str, Any]] = {}
        self.properties = {t: set(p) for t, p in PROPERTIES.items()}
        extras = extra_properties or {"contacts": {"signalflow_message"}}
        for object_type, names in extras.items():
            self.properties[object_type] |= names
        self._ids = itertools.count(101)
        self._owner_ids = itertools.count(9001)
        for first, last, email in DEMO_OWNERS if seed_demo else DEMO_OWNERS[:1]:
            self.add_owner(first, last, email)
        if seed_demo:
            for company in DEMO_COMPANIES:
                self.insert("companies", dict(company))

    # -- in-process API --------------------------------------------------------

    def add_owner(self, first: str, last: str, email: str) -> str:
        """Add an owner (a HubSpot user) and return its id."""
        owner_id = str(next(self._owner_ids))
        now = _timestamp()
        self.owners[owner_id] = {
            "id": owner_id,
            "email": email,
            "firstName": first,
            "lastName": last,
            "userId": int(owner_id) + 1000,
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        return owner_id

    def insert(self, object_type: str, properties: dict[str, Any]) -> str:
        """Store an object without validation and return its id."""
        object_id = str(next(self._ids))
        now = _timestamp()
        values = {k: _as_property(v) for k, v in properties.items()}
        values.update(createdate=now, lastmodifieddate=now, hs_object_id=object_id)
        self.objects[object_type][object_id] = {
            "id": object_id,
            "properties": values,
            "createdAt": now,
            "updatedAt": now,
            "archived": False,
        }
        return object_id

    def associated(self, from_type: str, from_id: str, to_type: str) -> list[str]:
        """Ids of `to_type` objects associated with one object."""
        return sorted(
            t_id
            for f_type, f_id, t_type, t_id in self.associations
            if (f_type, f_id, t_type) == (from_type, from_id, to_type)
        )

    # -- HTTP ------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        objects = "/crm/v3/objects/{object_type}"
        v4 = "/crm/v4/objects/{from_type}/{from_id}/associations"
        return [
            Route(f"{objects}/search", self._search, methods=["POST"]),
            Route(objects, self._create, methods=["POST"]),
            Route(f"{objects}/{{object_id}}", self._object, methods=["GET", "PATCH"]),
            Route(
                f"{v4}/default/{{to_type}}/{{to_id}}", self._associate, methods=["PUT"]
            ),
            Route(f"{v4}/{{to_type}}", self._list_associations, methods=["GET"]),
            Route("/crm/v3/owners", self._list_owners, methods=["GET"]),
            Route("/crm/v3/owners/", self._list_owners, methods=["GET"]),
            Route("/crm/v3/owners/{owner_id}", self._get_owner, methods=["GET"]),
        ]

    def error_response(self, status: int, message: str) -> Response:
        categories = {
            429: "RATE_LIMITS",
            400: "VALIDATION_ERROR",
            401: "INVALID_AUTHENTICATION",
        }
        return hubspot_error(status, categories.get(status, "INTERNAL_ERROR"), message)

    def unauthorized_response(self) -> Response:
        return hubspot_error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found. This API supports OAuth 2.0 "
            "authentication.",
        )

    async def _search(self, request: Request) -> Response:
        try:
            object_type = self._known_type(request.path_params["object_type"])
            query = await _json_object(request)
            return JSONResponse(self._run_search(object_type, query))
        except HubSpotApiError as error:
            return error.response()

    def _run_search(self, object_type: str, query: dict[str, Any]) -> dict[str, Any]:
        groups = query.get("filterGroups") or []
        if not isinstance(groups, list):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "filterGroups must be a list"
            )
        limit = int(query.get("limit") or 10)
        after = int(query.get("after") or 0)
        wanted = query.get("properties") or []
        matched = [
            o
            for o in self.objects[object_type].values()
            if not groups or any(_group_holds(g, o["properties"]) for g in groups)
        ]
        page = matched[after : after + limit]
        body: dict[str, Any] = {
            "total": len(matched),
            "results": [self._view(object_type, o, wanted) for o in page],
        }
        if after + limit < len(matched):
            body["paging"] = {"next": {"after": str(after + limit)}}
        return body

    async def _create(self, request: Request) -> Response:
        try:
            object_type = self._known_type(request.path_params["object_type"])
            document = await _json_object(request)
            properties = self._checked_properties(
                object_type, document.get("properties")
            )
            self._refuse_duplicate_email(object_type, properties)
            links = self._checked_associations(
                object_type, document.get("associations")
            )
        except HubSpotApiError as error:
            return error.response()
        object_id = self.insert(object_type, properties)
        for to_type, to_id in links:
            self._link(object_type, object_id, to_type, to_id)
        created = self.objects[object_type][object_id]
        return JSONResponse(
            self._view(object_type, created, list(properties)), status_code=201
        )

    async def _object(self, request: Request) -> Response:
        try:
            object_type = self._known_type(request.path_params["object_type"])
            stored = self._existing(object_type, request.path_params["object_id"])
            if request.method == "GET":
                wanted = [
                    p
                    for p in request.query_params.get("properties", "").split(",")
                    if p
                ]
                return JSONResponse(self._view(object_type, stored, wanted))
            document = await _json_object(request)
            properties = self._checked_properties(
                object_type, document.get("properties")
            )
            self._refuse_duplicate_email(object_type, properties, own_id=stored["id"])
        except HubSpotApiError as error:
            return error.response()
        stored["properties"].update(properties)
        stored["updatedAt"] = stored["properties"]["lastmodifieddate"] = _timestamp()
        return JSONResponse(self._view(object_type, stored, list(properties)))

    async def _associate(self, request: Request) -> Response:
        params = request.path_params
        try:
            from_type = self._known_type(params["from_type"])
            to_type = self._known_type(params["to_type"])
            self._existing(from_type, params["from_id"])
            self._existing(to_type, params["to_id"])
            self._association_type(from_type, to_type)
        except HubSpotApiError as error:
            return error.response()
        self._link(from_type, params["from_id"], to_type, params["to_id"])
        now = _timestamp()
        type_id = ASSOCIATION_TYPES[(from_type, to_type)]
        return JSONResponse(
            {
                "status": "COMPLETE",
                "results": [
                    {
                        "from": {"id": params["from_id"]},
                        "to": {"id": params["to_id"]},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": type_id,
                        },
                    }
                ],
                "startedAt": now,
                "completedAt": now,
            }
        )

    async def _list_associations(self, request: Request) -> Response:
        params = request.path_params
        try:
            from_type = self._known_type(params["from_type"])
            to_type = self._known_type(params["to_type"])
            self._existing(from_type, params["from_id"])
        except HubSpotApiError as error:
            return error.response()
        type_id = ASSOCIATION_TYPES.get((from_type, to_type))
        results = [
            {
                "toObjectId": int(to_id),
                "associationTypes": [
                    {"category": "HUBSPOT_DEFINED", "typeId": type_id, "label": None}
                ],
            }
            for to_id in self.associated(from_type, params["from_id"], to_type)
        ]
        return JSONResponse({"results": results})

    async def _list_owners(self, request: Request) -> Response:
        email = request.query_params.get("email")
        owners = [
            o
            for o in self.owners.values()
            if email is None or o["email"].lower() == email.lower()
        ]
        return JSONResponse({"results": owners})

    async def _get_owner(self, request: Request) -> Response:
        owner = self.owners.get(request.path_params["owner_id"])
        if owner is None:
            return hubspot_error(404, "OBJECT_NOT_FOUND", "resource not found")
        return JSONResponse(owner)

    # -- validation ---------------------------------------------------------------

    def _known_type(self, object_type: str) -> str:
        if object_type not in PROPERTIES:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Unable to infer object type from: {object_type}",
            )
        return object_type

    def _existing(self, object_type: str, object_id: str) -> dict[str, Any]:
        stored = self.objects[object_type].get(object_id)
        if stored is None:
            raise HubSpotApiError(404, "OBJECT_NOT_FOUND", "resource not found")
        return stored

    def _checked_properties(self, object_type: str, properties: Any) -> dict[str, str]:
        if not isinstance(properties, dict):
            raise HubSpotApiError(
                400, "VALIDATION_ERROR", "properties must be an object"
            )
        unknown = sorted(set(properties) - self.properties[object_type])
        if unknown:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f'Property values were not valid: "{unknown[0]}" does not exist',
            )
        owner = properties.get("hubspot_owner_id")
        if owner and str(owner) not in self.owners:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"Property values were not valid: {owner} is not a valid owner id",
            )
        return {k: _as_property(v) for k, v in properties.items()}

    def _refuse_duplicate_email(
        self, object_type: str, properties: dict[str, str], *, own_id: str | None = None
    ) -> None:
        email = properties.get("email")
        if object_type != "contacts" or not email:
            return
        for object_id, stored in self.objects["contacts"].items():
            if (
                object_id != own_id
                and stored["properties"].get("email", "").lower() == email.lower()
            ):
                raise HubSpotApiError(
                    409, "CONFLICT", f"Contact already exists. Existing ID: {object_id}"
                )

    def _checked_associations(
        self, object_type: str, associations: Any
    ) -> list[tuple[str, str]]:
        links: list[tuple[str, str]] = []
        for association in associations or []:
            to_id = str(association.get("to", {}).get("id", ""))
            type_ids = [
                t.get("associationTypeId") for t in association.get("types", [])
            ]
            to_type = next(
                (
                    t
                    for (f, t), type_id in ASSOCIATION_TYPES.items()
                    if f == object_type and type_id in type_ids
                ),
                None,
            )
            if to_type is None or to_id not in self.objects[to_type]:
                raise HubSpotApiError(
                    400,
                    "VALIDATION_ERROR",
                    f"invalid association to {to_id!r} with types {type_ids}",
                )
            links.append((to_type, to_id))
        return links

    def _association_type(self, from_type: str, to_type: str) -> int:
        type_id = ASSOCIATION_TYPES.get((from_type, to_type))
        if type_id is None:
            raise HubSpotApiError(
                400,
                "VALIDATION_ERROR",
                f"no default association from {from_type} to {to_type}",
            )
        return type_id

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.add((from_type, from_id, to_type, to_id))
        self.associations.add((to_type, to_id, from_type, from_id))

    def _view(
        self, object_type: str, stored: dict[str, Any], wanted: list[str]
    ) -> dict[str, Any]:
        names = [*DEFAULT_PROPERTIES[object_type], *SYSTEM_PROPERTIES, *wanted]
        values = stored["properties"]
        return {
            "id": stored["id"],
            "properties": {n: values.get(n) for n in dict.fromkeys(names)},
            "createdAt": stored["createdAt"],
            "updatedAt": stored["updatedAt"],
            "archived": stored["archived"],
        }


def _group_holds(group: Any, properties: dict[str, str]) -> bool:
    filters = group.get("filters", []) if isinstance(group, dict) else []
    return all(_filter_holds(f, properties) for f in filters)


def _filter_holds(spec: dict[str, Any], properties: dict[str, str]) -> bool:
    name = spec.get("propertyName", "")
    operator = str(spec.get("operator", "EQ"))
    actual = properties.get(name)
    expected = str(spec.get("value", "")).lower()
    if operator == "HAS_PROPERTY":
        return bool(actual)
    if operator == "NOT_HAS_PROPERTY":
        return not actual
    if actual is None:
        return operator == "NEQ"
    value = actual.lower()
    if operator == "EQ":
        return value == expected
    if operator == "NEQ":
        return value != expected
    if operator == "IN":
        return value in {str(v).lower() for v in spec.get("values", [])}
    if operator == "CONTAINS_TOKEN":
        return expected.strip("*") in value
    raise HubSpotApiError(400, "VALIDATION_ERROR", f"unsupported operator {operator!r}")


async def _json_object(request: Request) -> dict[str, Any]:
    document = await json_body(request)
    if not isinstance(document, dict):
        raise HubSpotApiError(400, "VALIDATION_ERROR", "Invalid input JSON on line 1")
    return document


def _as_property(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _timestamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
