"""The ownership action: choose an owner and write it to the person's CRM record.

Methods:

- `record_owner_field`: the user in a field of the person's record (an SDR owner
  field, say), read from the CRM record when the connector can read it, else from
  the run's snapshot of the person;
- `account_owner_field`: the user in a field of the account, the same way;
- `specific_user`: one configured user;
- `round_robin`: the next of the configured users, in proportion to their
  weights, skipping users marked unavailable (settings, or the Redis set
  `signalflow:<prefix>actions:unavailable-users`); the turn is taken atomically
  in Redis (`RoundRobin`), so replicas share one fair rotation per workflow step.

Users are written as email addresses or CRM user ids; an email is looked up in
the CRM. The owner is written to `write_field` (the CRM's own owner field by
default). With `only_if_unowned`, a record that has an owner keeps it and the
step is SKIPPED. A dry run takes no turn (it peeks) and writes nothing.

Outputs: `owner` (the user as configured), `owner_id` (the CRM user id) and
`owner_name` when the CRM knows it.
"""

from __future__ import annotations

import logging
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.connectors.crm import CrmConnector
from services.actions.crm_records import (
    OWNER_FIELDS,
    CrmPerson,
    find_account,
    find_person,
    read_fully,
    record_field,
    resolve_user,
    run_target,
)
from services.actions.errors import PermanentError
from services.actions.resources import Resources
from services.actions.roundrobin import NoCandidatesError, RoundRobin
from signalflow.topics import ActionType
from signalflow.workflow.steps import (
    AccountOwnerField,
    AssignOwnerParams,
    RecordOwnerField,
    SpecificUser,
)
from signalflow.workflow.steps import (
    RoundRobin as RoundRobinMethod,
)

log = logging.getLogger(__name__)

DEFAULT_OWNER_FIELD = "OwnerId"


class AssignOwnerAction(Action[AssignOwnerParams]):
    """Assigns the person's record to a chosen user."""

    action_type = ActionType.ASSIGN_OWNER

    def __init__(self, resources: Resources) -> None:
        self._resources = resources
        self._round_robin = RoundRobin(
            resources.redis, namespace=resources.redis_key("round-robin")
        )
        self._unavailable_key = resources.redis_key("unavailable-users")

    async def perform(self, step: Step[AssignOwnerParams]) -> Outcome:
        target = run_target(step, self._resources)
        if step.dry_run:
            user = await self._choose_without_crm(step)
            return Outcome.ok(
                would_send({"crm": target, "owner": user, "field": self._field(step)})
            )
        crm = await self._resources.connectors.crm(target)
        person = await find_person(step, crm, target)
        if step.params.only_if_unowned:
            current = await crm.get_owner(person.record.ref)
            if current is not None:
                return Outcome.skipped(
                    "the record already has an owner",
                    {"owner": current.email or current.id, "owner_id": current.id},
                )
        user = await self._choose(step, crm, person)
        owner = await resolve_user(crm, target, user)
        await self._write(step, crm, person, owner.id)
        log.info("assigned %s %s to %s", target, person.record.ref.id, owner.id)
        outputs: dict[str, Any] = {"owner": user, "owner_id": owner.id}
        if owner.name:
            outputs["owner_name"] = owner.name
        return Outcome.ok(outputs)

    async def _choose(
        self, step: Step[AssignOwnerParams], crm: CrmConnector, person: CrmPerson
    ) -> str:
        method = step.params.method
        if isinstance(method, SpecificUser):
            return method.user
        if isinstance(method, RoundRobinMethod):
            return await self._next_in_turn(step, method, peek=False)
        if isinstance(method, RecordOwnerField):
            record = await read_fully(crm, person.record)
            return _required(
                record_field(record, step.person, method.field), method.field
            )
        account = await read_fully(crm, await find_account(step, crm))
        return _required(
            record_field(account, step.account, method.field), method.field
        )

    async def _choose_without_crm(self, step: Step[AssignOwnerParams]) -> str:
        method = step.params.method
        if isinstance(method, SpecificUser):
            return method.user
        if isinstance(method, RoundRobinMethod):
            return await self._next_in_turn(step, method, peek=True)
        if isinstance(method, RecordOwnerField):
            return _required(
                record_field(None, step.person, method.field), method.field
            )
        if isinstance(method, AccountOwnerField):
            return _required(
                record_field(None, step.account, method.field), method.field
            )
        raise PermanentError(f"unknown assignment method {method!r}")

    async def _next_in_turn(
        self, step: Step[AssignOwnerParams], method: RoundRobinMethod, *, peek: bool
    ) -> str:
        unavailable = await self._unavailable()
        members = [
            (member.user, member.weight)
            for member in method.users
            if member.user.lower() not in unavailable
        ]
        pool = f"{step.command.workflow_id}:{step.command.step_id}"
        try:
            return await self._round_robin.next(pool, members, peek=peek)
        except NoCandidatesError as error:
            raise PermanentError(
                f"every user of the round robin is unavailable: "
                f"{[member.user for member in method.users]!r}"
            ) from error

    async def _unavailable(self) -> set[str]:
        members = await self._resources.redis.smembers(self._unavailable_key)
        names = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        names.update(self._resources.own.unavailable_users)
        return {name.lower() for name in names}

    async def _write(
        self,
        step: Step[AssignOwnerParams],
        crm: CrmConnector,
        person: CrmPerson,
        owner_id: str,
    ) -> None:
        field = self._field(step)
        if field == OWNER_FIELDS[person.target]:
            await crm.assign_owner(person.record.ref, owner_id)
        else:
            await crm.update_fields(person.record.ref, {field: owner_id})

    def _field(self, step: Step[AssignOwnerParams]) -> str:
        """The field to write; the model's default names the CRM's owner field."""
        field = step.params.write_field
        target = run_target(step, self._resources)
        if field == DEFAULT_OWNER_FIELD:
            return OWNER_FIELDS[target]
        return field


def _required(value: str | None, field: str) -> str:
    if not value:
        raise PermanentError(f"the field {field!r} names no user to assign")
    return value
