"""Where the repartitioner sends a person's profile, and what it remembers.

Profiles are re-keyed by account so that a person's state lives in the partition
of their account. A person who moves to an account of another partition must
not stay behind in the old one (still listed under the old account, evaluated
for its company signals), nor arrive in the new one without their history
(evaluated as a stranger, enrolled again where they had enrolled). So the
repartitioner remembers each person's home, the account their state lives
under, and sends the profile of a person who moved partitions to the old home:
that partition hands the person over, with their history, to the new one (see
`PartitionMatcher.on_profile`).

`route()` decides, for one person profile and the home remembered so far, the
account to send the profile under and the home to remember. A profile older than
the remembered one goes where the person is, and changes nothing there.

Later profiles of the person go straight to the new home. One of them can get
there before the handover (within the old partition's batch interval); the
person is then evaluated once without their history, and may enroll again. Such
an enrollment has the run id of the person's first enrollment in the workflow
(run ids come from the workflow, the person and the count of their
enrollments), so the steps, whose side effects are claimed per run id, do not
run again while those claims last. A person who moves on again before their
handover arrived is passed on by the partition they moved to, which remembers
where, and the handover follows them there when it comes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.matcher.state import to_millis
from signalflow.kafka.clients import partition_for

Json = dict[str, Any]


@dataclass(frozen=True)
class Route:
    """Where one person profile goes.

    Attributes:
        account_key: the key to send the profile under.
        home: the home to remember once it is sent (None: forget the person).
        moves: whether the person moves partitions, so the send must be
            acknowledged before the new home is remembered: a crash in between
            then sends the profile to the old home again, never to nobody.
    """

    account_key: str
    home: Json | None
    moves: bool = False


def route(profile: Mapping[str, Any], home: Json | None, partitions: int) -> Route:
    """Route a validated person profile, given the person's remembered home
    (`{"a": account key, "u": updated_at in ms}`, None when unknown)."""
    account_key: str = profile["account_key"]
    updated = to_millis(profile["updated_at"]) or 0
    if profile.get("deleted"):
        return Route(home["a"] if home else account_key, None)
    fresh = {"a": account_key, "u": updated}
    if home is None:
        return Route(account_key, fresh)
    if updated < int(home["u"]):
        return Route(home["a"], home)
    here = partition_for(str(home["a"]).encode(), partitions)
    if here == partition_for(account_key.encode(), partitions):
        return Route(account_key, fresh)
    return Route(home["a"], fresh, moves=True)
