"""Saving audiences and workflows: validation, versions, status changes.

Every write validates the whole definition with the model, then checks the saved
objects it names (`check_references`): the audience of a workflow exists, audiences
do not contain each other. A write based on what was read is saved only if nothing
else was saved in between (the log's `expect`), and answers 409 otherwise.

Ids are chosen by the client or generated (`aud_<hex>`, `wf_<hex>`); an id is
never reused, not even after a deletion, so every version in the history belongs
to one object. Status changes only through `activate` and `pause`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, TypeVar

from services.api.payloads import Deleted, VersionInfo
from services.api.problems import Conflict, InvalidDefinition, NotFound, Unavailable
from signalflow.definitions import (
    Definition,
    DefinitionKind,
    DefinitionKindError,
    DefinitionLog,
    DefinitionLogError,
    SaveTimeoutError,
    StoredDefinition,
    UnknownDefinitionError,
    VersionConflictError,
)
from signalflow.workflow import (
    Audience,
    DefinitionError,
    Workflow,
    validate_audience,
    validate_workflow,
)
from signalflow.workflow.steps import BranchStep

log = logging.getLogger(__name__)

Status = Literal["draft", "active", "paused"]
Timing = Literal["all_current", "future_only"]
T = TypeVar("T")

SERVER_FIELDS = ("version",)


class DefinitionEditor:
    """Reads and writes definitions through one `DefinitionLog`."""

    def __init__(self, definitions: DefinitionLog) -> None:
        self._log = definitions

    # -------------------------------------------------------------------- reads

    def audience(self, audience_id: str, version: int | None = None) -> Audience:
        """Return a live audience (or one of its versions); NotFound otherwise."""
        found = self._log.audience(audience_id, version)
        if found is None:
            raise NotFound(_missing("audience", audience_id, version))
        return found

    def workflow(self, workflow_id: str, version: int | None = None) -> Workflow:
        """Return a live workflow (or one of its versions); NotFound otherwise."""
        found = self._log.workflow(workflow_id, version)
        if found is None:
            raise NotFound(_missing("workflow", workflow_id, version))
        return found

    def history(self, definition_id: str, kind: DefinitionKind) -> list[VersionInfo]:
        """Every version of a definition of `kind`, oldest first; NotFound if none."""
        entries = self._log.history(definition_id)
        if not entries or entries[0].kind is not kind:
            raise NotFound(f"No {kind.value.lower()} {definition_id!r} was ever saved.")
        return [_version_info(entry) for entry in entries]

    def audiences(self) -> list[Audience]:
        return [audience for _, audience in sorted(self._log.audiences().items())]

    def workflows(self) -> list[Workflow]:
        return [workflow for _, workflow in sorted(self._log.workflows().items())]

    # ---------------------------------------------------------------- audiences

    async def create_audience(self, body: Any) -> Audience:
        """Validate and save a new audience as version 1."""
        audience = self._valid_audience(_submission(body, new_id="aud"))
        self._require_unused(audience.id)
        version = await self._save(audience, expect=0)
        return self.audience(audience.id, version)

    async def update_audience(self, audience_id: str, body: Any) -> Audience:
        """Validate and save the next version of a live audience."""
        current = self._live_entry(audience_id, DefinitionKind.AUDIENCE)
        data = _submission(body, path_id=audience_id)
        audience = self._valid_audience(data)
        version = await self._save(audience, expect=current.version)
        return self.audience(audience_id, version)

    async def delete_audience(self, audience_id: str) -> Deleted:
        """Delete an audience that no active workflow and no other audience uses;
        Conflict otherwise.

        Drafts and paused workflows may keep naming it: they fail their checks,
        and so cannot be activated, until they name another audience.
        """
        current = self._live_entry(audience_id, DefinitionKind.AUDIENCE)
        users = self._users_of(audience_id)
        if users:
            raise Conflict(
                f"Audience {audience_id!r} is used by {', '.join(users)};"
                " change or delete those first."
            )
        version = await self._delete(audience_id, expect=current.version)
        return Deleted(id=audience_id, version=version)

    # ---------------------------------------------------------------- workflows

    async def create_workflow(self, body: Any) -> Workflow:
        """Validate and save a new workflow as version 1, in draft."""
        data = _submission(body, new_id="wf")
        _require_status(data, "draft")
        workflow = self._valid_workflow({**data, "status": "draft"})
        self._require_unused(workflow.id)
        version = await self._save(workflow, expect=0)
        return self.workflow(workflow.id, version)

    async def update_workflow(self, workflow_id: str, body: Any) -> Workflow:
        """Validate and save the next version of a live workflow, status kept."""
        current = self._live_entry(workflow_id, DefinitionKind.WORKFLOW)
        status = _status_of(current)
        data = _submission(body, path_id=workflow_id)
        _require_status(data, status)
        workflow = self._valid_workflow({**data, "status": status})
        version = await self._save(workflow, expect=current.version)
        return self.workflow(workflow_id, version)

    async def delete_workflow(self, workflow_id: str) -> tuple[Deleted, Workflow]:
        """Delete a live workflow; returns the deletion and the version deleted."""
        current = self._live_entry(workflow_id, DefinitionKind.WORKFLOW)
        deleted = self.workflow(workflow_id)
        version = await self._delete(workflow_id, expect=current.version)
        return Deleted(id=workflow_id, version=version), deleted

    async def change_status(
        self, workflow_id: str, status: Status, *, timing: Timing | None = None
    ) -> Workflow:
        """Save the next version of a workflow with a new status (and timing).

        The whole workflow is validated again, references included, so a draft
        whose audience was deleted since cannot be activated (InvalidDefinition).
        """
        current = self._live_entry(workflow_id, DefinitionKind.WORKFLOW)
        data = self.workflow(workflow_id).model_dump(by_alias=True, exclude={"version"})
        data["status"] = status
        if timing is not None:
            data["timing"] = timing
        workflow = self._valid_workflow(data)
        version = await self._save(workflow, expect=current.version)
        return self.workflow(workflow_id, version)

    def check_runnable(self, workflow: Workflow) -> None:
        """Raise InvalidDefinition unless the workflow passes every check now
        (its audience may have been deleted since it was saved)."""
        self._valid_workflow(workflow.model_dump(by_alias=True, exclude={"version"}))

    async def save_instantiated(
        self, audience: Audience, workflow: Workflow
    ) -> tuple[Audience, Workflow]:
        """Save a prebuilt campaign's fresh audience and workflow, both version 1."""
        saved_audience = await self.create_audience(
            audience.model_dump(by_alias=True, exclude={"version"})
        )
        saved_workflow = await self.create_workflow(
            workflow.model_dump(by_alias=True, exclude={"version"})
        )
        return saved_audience, saved_workflow

    # ---------------------------------------------------------------- internals

    def _valid_audience(self, data: dict[str, Any]) -> Audience:
        return _validated(validate_audience, data, self._log.audiences())

    def _valid_workflow(self, data: dict[str, Any]) -> Workflow:
        return _validated(validate_workflow, data, self._log.audiences())

    def _require_unused(self, definition_id: str) -> None:
        existing = self._log.entry(definition_id)
        if existing is None:
            return
        kind = existing.kind.value.lower()
        state = "was deleted; ids are not reused" if existing.deleted else "exists"
        raise Conflict(f"The id {definition_id!r} is taken: a {kind} {state}.")

    def _live_entry(self, definition_id: str, kind: DefinitionKind) -> StoredDefinition:
        entry = self._log.entry(definition_id)
        if entry is None or entry.deleted or entry.kind is not kind:
            raise NotFound(_missing(kind.value.lower(), definition_id, None))
        return entry

    def _users_of(self, audience_id: str) -> list[str]:
        key = f"audience:{audience_id}"
        users = [
            f"audience {other.id!r}"
            for other in self._log.audiences().values()
            if other.id != audience_id and key in other.filter.reads()
        ]
        users += [
            f"active workflow {workflow.id!r}"
            for workflow in self._log.active_workflows()
            if _workflow_uses(workflow, audience_id)
        ]
        return sorted(users)

    async def _save(self, definition: Definition, *, expect: int) -> int:
        return await _translated(lambda: self._log.save(definition, expect=expect))

    async def _delete(self, definition_id: str, *, expect: int) -> int:
        return await _translated(lambda: self._log.delete(definition_id, expect=expect))


def _submission(
    body: Any, *, new_id: str | None = None, path_id: str | None = None
) -> dict[str, Any]:
    """The submitted definition with the fields the server decides settled."""
    if not isinstance(body, dict):
        raise InvalidDefinition(
            [{"path": "", "message": "Send the definition as a JSON object."}]
        )
    data = {key: value for key, value in body.items() if key not in SERVER_FIELDS}
    if path_id is not None:
        if data.setdefault("id", path_id) != path_id:
            raise InvalidDefinition(
                [
                    {
                        "path": "id",
                        "message": f"The id in the body ({data['id']!r}) must be"
                        f" the id in the address ({path_id!r}).",
                    }
                ]
            )
    elif data.get("id") is None and new_id is not None:
        data["id"] = f"{new_id}_{uuid.uuid4().hex[:16]}"
    return data


def _require_status(data: dict[str, Any], status: str) -> None:
    given = data.get("status", status)
    if given != status:
        raise InvalidDefinition(
            [
                {
                    "path": "status",
                    "message": f"The status is {status!r}; change it with activate"
                    f" or pause, not by saving {given!r}.",
                }
            ]
        )


def _validated(
    validate: Callable[..., T], data: dict[str, Any], audiences: Mapping[str, Audience]
) -> T:
    try:
        return validate(data, audiences=audiences)
    except DefinitionError as error:
        raise InvalidDefinition(error.as_list()) from None


async def _translated(write: Callable[[], Awaitable[int]]) -> int:
    try:
        return await write()
    except VersionConflictError as error:
        raise Conflict(
            f"{error.definition_id!r} changed while this request ran (now at"
            f" version {error.found}); read it again and retry."
        ) from error
    except (DefinitionKindError, UnknownDefinitionError) as error:
        raise Conflict(str(error)) from error
    except SaveTimeoutError as error:
        raise Unavailable(
            f"The definition could not be saved in time: {error}"
        ) from error
    except DefinitionLogError as error:
        raise Unavailable(f"The definition store is not available: {error}") from error


def _workflow_uses(workflow: Workflow, audience_id: str) -> bool:
    if workflow.audience_id == audience_id:
        return True
    key = f"audience:{audience_id}"
    return any(
        isinstance(step, BranchStep)
        and step.params.condition is not None
        and key in step.params.condition.reads()
        for _, step in workflow.paths()
    )


def _status_of(entry: StoredDefinition) -> Status:
    model = entry.model
    return model.status if isinstance(model, Workflow) else "draft"


def _version_info(entry: StoredDefinition) -> VersionInfo:
    status = entry.model.status if isinstance(entry.model, Workflow) else None
    return VersionInfo(
        version=entry.version,
        saved_at=entry.saved_at,
        deleted=entry.deleted,
        status=status,
    )


def _missing(kind: str, definition_id: str, version: int | None) -> str:
    if version is None:
        return f"No {kind} {definition_id!r} exists."
    return f"No version {version} of {kind} {definition_id!r} exists."
