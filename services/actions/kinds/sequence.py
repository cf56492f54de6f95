"""The sequence action: add the prospect to an Outreach sequence or a Salesloft
cadence.

The platform connector runs the steps in order (`connectors.sequencing`): find
the prospect by email or create them (when the step allows), give them the
enrollment owner, write the run's AI message into the platform's custom fields,
remove them from their other active sequences (when asked), and enroll them
unless they already are. Every step reads before it writes, so a retry or a
redelivery repeats nothing.

The enrollment owner is the record owner (the person's `owner`, or a field of
the person), the account owner (or a field of the account), or a specific user,
given as an email address (looked up among the platform's users) or a platform
user id. The AI message is the latest `subject` and `body` outputs of the run;
which custom fields receive them is `SequenceSettings`.

Outputs: `prospect_id`, `enrollment_id`, `sequence_id`, `created` and
`already_enrolled` (Yes or No), `removed_from` (membership ids).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from services.actions.action import Action, Step, would_send
from services.actions.command import Outcome
from services.actions.connectors.sequencing import EnrollmentRequest
from services.actions.crm_records import person_email
from services.actions.errors import PermanentError
from services.actions.resources import Resources
from signalflow.topics import ActionType
from signalflow.workflow.steps import AccountOwner, RecordOwner, SequenceParams

log = logging.getLogger(__name__)

#: Profile field -> the platform's person field.
PERSON_FIELDS: Mapping[str, Mapping[str, str]] = {
    "outreach": {"first_name": "firstName", "last_name": "lastName", "title": "title"},
    "salesloft": {
        "first_name": "first_name",
        "last_name": "last_name",
        "title": "title",
    },
}


class SequenceAction(Action[SequenceParams]):
    """Enrolls prospects in sequences or cadences."""

    action_type = ActionType.SEQUENCE

    def __init__(self, resources: Resources) -> None:
        self._resources = resources

    async def perform(self, step: Step[SequenceParams]) -> Outcome:
        params = step.params
        owner = _owner_address(step)
        sequence = params.sequence_id or params.sequence_name or ""
        custom = self._custom_fields(step)
        person_fields = _person_fields(step, params.platform)
        if step.dry_run:
            view = {
                "platform": params.platform,
                "sequence": sequence,
                "email": person_email(step),
                "owner": owner or "(keep)",
                "create_if_missing": params.create_prospect_if_missing,
                "remove_from_other_sequences": params.remove_from_other_sequences,
                "custom_fields": custom,
            }
            return Outcome.ok(would_send(view))
        platform = await self._resources.connectors.get(params.platform)
        request = EnrollmentRequest(
            email=person_email(step),
            sequence=sequence,
            owner_id=await _platform_user(platform, params.platform, owner),
            person_fields=person_fields,
            custom_fields=custom,
            create_if_missing=params.create_prospect_if_missing,
            remove_from_other_sequences=params.remove_from_other_sequences,
        )
        outcome = await platform.add_to_sequence(request)
        return Outcome.ok(
            {
                "prospect_id": outcome.person_id,
                "enrollment_id": outcome.membership_id,
                "sequence_id": outcome.sequence_id,
                "created": outcome.person_created,
                "already_enrolled": outcome.already_enrolled,
                "removed_from": ", ".join(outcome.removed_membership_ids),
            }
        )

    def _custom_fields(self, step: Step[SequenceParams]) -> dict[str, str]:
        settings = self._resources.sequence
        platform = step.params.platform
        names = {
            "subject": getattr(settings, f"{platform}_subject_field"),
            "body": getattr(settings, f"{platform}_body_field"),
        }
        fields: dict[str, str] = {}
        for output, field_name in names.items():
            value = step.context.output_value(output)
            if value:
                fields[field_name] = str(value)
        return fields


def _owner_address(step: Step[SequenceParams]) -> str | None:
    """The enrollment owner as configured: an email address or a user id."""
    choice = step.params.owner
    if isinstance(choice, (RecordOwner, AccountOwner)):
        profile = step.person if isinstance(choice, RecordOwner) else step.account
        profile = profile or {}
        value = (
            (profile.get("fields") or {}).get(choice.field)
            if choice.field
            else profile.get("owner")
        )
        return str(value) if value else None
    return choice.user


async def _platform_user(platform: Any, name: str, owner: str | None) -> str | None:
    if owner is None:
        return None
    if "@" not in owner:
        return owner
    user_id: str | None = await platform.find_user_id(owner)
    if user_id is None:
        raise PermanentError(f"no {name} user has the email address {owner!r}")
    return user_id


def _person_fields(step: Step[SequenceParams], platform: str) -> dict[str, Any]:
    profile = step.person.get("fields") or {}
    return {
        target: profile[source]
        for source, target in PERSON_FIELDS[platform].items()
        if profile.get(source)
    }
