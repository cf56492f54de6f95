"""Who a notification goes to, from the step's recipients and the run's snapshot.

Owners come from the enrollment's snapshot of the person and the account: the
record owner is the person's `owner` (or, when the recipient names a field, that
field of the person), the past record owner the most recent of the person's
`past_owners` (the profile lists them oldest first), and the same for the
account. Owners are written as email addresses (a Slack user id is accepted for
Slack). A specific user is whatever the step names. Recipients that resolve to
nobody (no past owner, say) are left out; the same address reached twice gets
one message.

`Deliveries` remembers, per step, which destinations (a Slack user or channel, an
email address) already got their message, so a retry after a partial failure
(the second of three posts rate limited) does not message the first one again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from redis.asyncio import Redis

from signalflow.workflow.steps import (
    AccountOwner,
    PastAccountOwner,
    PastRecordOwner,
    RecordOwner,
    SlackChannel,
    SlackGroup,
    SpecificUser,
)

AddresseeKind = Literal["person", "channel", "group"]


@dataclass(frozen=True)
class Addressee:
    """One resolved recipient: a person (email or user id), a channel or a group."""

    kind: AddresseeKind
    address: str
    via: str

    @property
    def key(self) -> str:
        """What identifies this addressee among a step's deliveries."""
        return f"{self.kind}:{self.address.lower()}"


def addressees(
    recipients: Sequence[Any],
    person: Mapping[str, Any],
    account: Mapping[str, Any] | None,
) -> list[Addressee]:
    """Resolve the step's recipients against the snapshot, without duplicates."""
    found: dict[str, Addressee] = {}
    for recipient in recipients:
        for addressee in _resolve(recipient, person, account or {}):
            found.setdefault(addressee.key, addressee)
    return list(found.values())


def _resolve(
    recipient: Any, person: Mapping[str, Any], account: Mapping[str, Any]
) -> Iterable[Addressee]:
    kind = str(recipient.kind)
    if isinstance(recipient, SlackChannel):
        yield Addressee("channel", recipient.channel.lstrip("#"), kind)
    elif isinstance(recipient, SlackGroup):
        yield Addressee("group", recipient.group.lstrip("@"), kind)
    elif isinstance(recipient, SpecificUser):
        yield Addressee("person", recipient.user, kind)
    else:
        owner = _owner(recipient, person, account)
        if owner:
            yield Addressee("person", owner, kind)


def _owner(
    recipient: Any, person: Mapping[str, Any], account: Mapping[str, Any]
) -> str | None:
    if isinstance(recipient, RecordOwner):
        return _current_owner(person, recipient.field)
    if isinstance(recipient, PastRecordOwner):
        return _latest_past_owner(person)
    if isinstance(recipient, AccountOwner):
        return _current_owner(account, recipient.field)
    if isinstance(recipient, PastAccountOwner):
        return _latest_past_owner(account)
    raise TypeError(f"expected a recipient of the workflow model, got {recipient!r}")


def _current_owner(profile: Mapping[str, Any], field: str | None) -> str | None:
    if field is None:
        value = profile.get("owner")
    else:
        value = (profile.get("fields") or {}).get(field) or profile.get(field)
    return str(value).strip() if value else None


def _latest_past_owner(profile: Mapping[str, Any]) -> str | None:
    past = [str(owner).strip() for owner in profile.get("past_owners") or [] if owner]
    return past[-1] if past else None


class Deliveries:
    """Which addressees of one step already got their message, in Redis.

    Args:
        redis: the shared Redis.
        namespace: prefix of the keys (environment prefix included).
        ttl_s: how long a step's deliveries are remembered.
    """

    def __init__(self, redis: Redis, *, namespace: str, ttl_s: int) -> None:
        self._redis = redis
        self._namespace = namespace
        self._ttl_s = ttl_s

    async def done(self, step_key: str) -> set[str]:
        """The destinations already served for this step."""
        members = await self._redis.smembers(self._key(step_key))
        return {m.decode() if isinstance(m, bytes) else str(m) for m in members}

    async def mark(self, step_key: str, destination: str) -> None:
        """Record that `destination` got the step's message."""
        key = self._key(step_key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.sadd(key, destination)
            pipe.expire(key, self._ttl_s)
            await pipe.execute()

    def _key(self, step_key: str) -> str:
        return f"{self._namespace}:{{{step_key}}}:delivered"
