"""Adding a person to a sequence (Outreach) or cadence (Salesloft), the same way
on either platform.

Each platform connector offers the steps as a `SequencePlatform`, and
`add_to_sequence` runs them in the order the sequence action needs:

1. find the person by e-mail, or create them when allowed;
2. give them the requested owner;
3. write custom fields (an AI-written subject and body, for instance);
4. find the sequence by id or name;
5. optionally remove them from the other sequences they are active in;
6. enroll them, unless they are already active in this sequence.

Running it again after a failure or a redelivery repeats no side effect: every
step reads before it writes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.actions.errors import PermanentError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SepPerson:
    """A person on the platform (an Outreach prospect, a Salesloft person)."""

    id: str
    email: str
    owner_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SepSequence:
    """A sequence or cadence."""

    id: str
    name: str


@dataclass(frozen=True)
class SepMembership:
    """A person's place in a sequence (a sequence state, a cadence membership)."""

    id: str
    sequence_id: str
    person_id: str
    state: str


@dataclass(frozen=True)
class EnrollmentRequest:
    """What the sequence step asks for.

    `sequence` is a sequence id or its exact name. `owner_id` is the platform
    user who should own the person and the enrollment (None keeps the owner).
    """

    email: str
    sequence: str
    owner_id: str | None = None
    person_fields: Mapping[str, Any] = field(default_factory=dict)
    custom_fields: Mapping[str, str] = field(default_factory=dict)
    create_if_missing: bool = True
    remove_from_other_sequences: bool = False


@dataclass(frozen=True)
class EnrollmentOutcome:
    """What happened, for the step's outputs."""

    person_id: str
    person_created: bool
    sequence_id: str
    membership_id: str
    already_enrolled: bool
    removed_membership_ids: tuple[str, ...] = ()


class SequencePlatform(Protocol):
    """The steps one platform offers; each raises ActionError on failure."""

    async def find_person(self, email: str) -> SepPerson | None:
        """The person with this e-mail address, or None."""
        ...

    async def create_person(
        self, email: str, fields: Mapping[str, Any], *, owner_id: str | None
    ) -> SepPerson:
        """Create a person."""
        ...

    async def set_owner(self, person_id: str, owner_id: str) -> None:
        """Make `owner_id` the person's owner."""
        ...

    async def write_custom_fields(
        self, person_id: str, fields: Mapping[str, str]
    ) -> None:
        """Write custom fields on the person."""
        ...

    async def find_sequence(self, id_or_name: str) -> SepSequence | None:
        """The sequence with this id or exact name, or None."""
        ...

    async def active_memberships(self, person_id: str) -> list[SepMembership]:
        """The sequences the person is currently active in."""
        ...

    async def remove_membership(self, membership: SepMembership) -> None:
        """Take the person out of one sequence."""
        ...

    async def enroll(
        self, person: SepPerson, sequence: SepSequence, *, owner_id: str | None
    ) -> SepMembership:
        """Add the person to the sequence, sending as `owner_id` if given."""
        ...


async def add_to_sequence(
    platform: SequencePlatform, request: EnrollmentRequest
) -> EnrollmentOutcome:
    """Run the enrollment steps (see the module docstring) on one platform.

    Raises PermanentError when the person is missing and may not be created,
    or when the sequence does not exist; ActionError from any step.
    """
    person, created = await _person_for(platform, request)
    if request.custom_fields:
        await platform.write_custom_fields(person.id, request.custom_fields)

    sequence = await platform.find_sequence(request.sequence)
    if sequence is None:
        raise PermanentError(f"expected an existing sequence, got {request.sequence!r}")

    memberships = await platform.active_memberships(person.id)
    current = [m for m in memberships if m.sequence_id == sequence.id]
    removed: list[str] = []
    if request.remove_from_other_sequences:
        for membership in memberships:
            if membership.sequence_id != sequence.id:
                await platform.remove_membership(membership)
                removed.append(membership.id)

    if current:
        membership, already = current[0], True
    else:
        owner = request.owner_id or person.owner_id
        membership, already = (
            await platform.enroll(person, sequence, owner_id=owner),
            False,
        )
    logger.info(
        "person %s in sequence %s (membership %s, already enrolled: %s)",
        person.id,
        sequence.id,
        membership.id,
        already,
    )
    return EnrollmentOutcome(
        person_id=person.id,
        person_created=created,
        sequence_id=sequence.id,
        membership_id=membership.id,
        already_enrolled=already,
        removed_membership_ids=tuple(removed),
    )


async def _person_for(
    platform: SequencePlatform, request: EnrollmentRequest
) -> tuple[SepPerson, bool]:
    person = await platform.find_person(request.email)
    if person is None:
        if not request.create_if_missing:
            raise PermanentError(
                f"expected a person with e-mail {request.email!r} on the platform, "
                "and creating one is turned off"
            )
        created = await platform.create_person(
            request.email, request.person_fields, owner_id=request.owner_id
        )
        return created, True
    if request.owner_id is not None and person.owner_id != request.owner_id:
        await platform.set_owner(person.id, request.owner_id)
        person = SepPerson(person.id, person.email, request.owner_id, person.fields)
    return person, False
