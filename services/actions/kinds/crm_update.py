"""The CRM update action: write templated values to fields of a record.

The record is the person's (the one an earlier CRM step wrote, else matched by
email) or the account's (matched by domain). Values render as plain text, so a
generated message can be stored in a CRM field for a sequencing tool that reads
it there.

Outputs: `record_id`, `object` (contact, lead or account) and `fields` (the names
written, comma-separated).
"""

from __future__ import annotations

import logging

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.crm_records import find_account, find_person, run_target
from services.actions.errors import PermanentError
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import CrmUpdateParams

log = logging.getLogger(__name__)


class CrmUpdateAction(Action[CrmUpdateParams]):
    """Writes fields of the person's or the account's CRM record."""

    action_type = ActionType.CRM_UPDATE

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def perform(self, step: Step[CrmUpdateParams]) -> Outcome:
        params = step.params
        target = run_target(step, self._resources)
        fields = {name: step.plain(value) for name, value in params.fields.items()}
        if step.dry_run:
            view = {"crm": target, "record": params.record, "fields": fields}
            return Outcome.ok(would_send(view))
        crm = await self._resources.connectors.crm(target)
        if params.record == "account":
            account = await find_account(step, crm)
            if account is None:
                raise PermanentError(
                    f"no {target} account matches the domain of account "
                    f"{(step.account or {}).get('key')!r}"
                )
            ref, kind = account.ref, "account"
        else:
            person = await find_person(step, crm, target)
            ref, kind = person.record.ref, person.object
        await crm.update_fields(ref, fields)
        log.info("updated %d fields of %s %s", len(fields), target, ref.id)
        return Outcome.ok(
            {"record_id": ref.id, "object": kind, "fields": ", ".join(fields)}
        )
