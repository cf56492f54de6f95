"""The matcher's decisions for one partition: state, evaluation, holds, enrollments.

`PartitionMatcher` is everything the matcher does for one partition, without
Kafka: the worker (`services.matcher.app`) calls it for each record of the
partition, and fast tests call it directly with an in-memory state and a test
clock.

On every signal or profile change the affected people (one person; every person
of the account for a company signal or an account profile) are evaluated against
the active workflows that read what changed and whose anchors they have
(`AudienceIndex`); only for those is the prospect's full state built. When a
profile change takes an anchor away (a new title, an account leaving an
industry), the workflows filed under the earlier anchors are evaluated too, so
the flags of a match that ended are cleared. Whatever the clock alone can change
is only asked of workflows whose other conjuncts hold (`ActiveWorkflow.judge`). A
match of a
realtime workflow enrolls at once, within the caps; a match of a scheduled
workflow is held as pending until the workflow's next run, when `on_tick` releases
it. A person enrolls once per match: the `enrolled` record's `b` flag stays set
while the match that enrolled goes on (and for those who matched when a
`future_only` workflow was activated); a later match enrolls again only where the
workflow allows re-enrollment and its days have passed.

Whatever the clock alone can change is put on the partition's timer index (due
minute -> people), and `on_tick` looks at those people again when the minute
comes. A tick costs nothing per realtime workflow but on the day's first tick,
and status reports go out for the workflows whose figures changed (all of them
every tenth report).

Enrollments are handed to the outbox as they are decided, without waiting for
the broker: `emitted` and `enrolled` are updated at once in the partition's
state, and `settle()` later waits for every acknowledgement and records the
offsets. The worker's state holds its writes in memory until it has settled (see
`services.matcher.tables`), so the tables never record an enrollment the broker
has not acknowledged. The module docstring of `services.matcher.app` explains
why this order, with the reconciliation at partition start, sends every
enrollment exactly once across crashes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.matcher.active import ActiveWorkflow
from services.matcher.anchors import Keys
from services.matcher.catalog import Catalog
from services.matcher.clock import Clock
from services.matcher.limits import SharedLimits
from services.matcher.records import (
    enrollment_record,
    live_run_id,
    status_record,
    trial_run_id,
)
from services.matcher.settings import MatcherSettings
from services.matcher.state import (
    EVERYTHING,
    EntityState,
    SignalLimits,
    prospect_state,
    stored_profile,
    to_millis,
)
from services.matcher.store import (
    EMITTED_UP_TO,
    SEP,
    PartitionState,
    pair_key,
    split_pair,
)
from signalflow.kafka.clients import partition_for
from signalflow.workflow.evaluate import ProspectState, SignalFact

log = logging.getLogger(__name__)

Json = dict[str, Any]

PREVIEW_EXAMPLES = 20
MINUTE_MS = 60_000
UNSETTLED = -1
"""The `emitted` value of an enrollment sent but not acknowledged yet."""
FULL_REPORT_EVERY = 10
REPORTED_FIGURES = (
    "pending",
    "held_by_account_cap",
    "held_by_rep_cap",
    "expired",
    "last_run_at",
    "last_run_enrolled",
)
"""The fields of a status report whose change makes it worth sending."""


class Sent(Protocol):
    """Enrollments handed to the producer, on their way to the broker."""

    async def offsets(self) -> list[int]:
        """Wait until the broker acknowledged every one; their offsets, in order.

        Raises what the producer raises when one could not be delivered.
        """


class Outbox(Protocol):
    """Where the matcher's records go."""

    async def send_enrollments(self, partition: int, records: Sequence[Json]) -> Sent:
        """Hand enrollments to the producer, in order, for `partition` of the
        enrollments topic; returns once they are queued, before the broker
        acknowledges them."""

    async def send_status(self, record: Json) -> None:
        """Send one `matcher_status` record."""

    async def send_handover(self, record: Json) -> Awaitable[Any]:
        """Hand one `person_handover` record to the producer, for the partition
        of the account the person moved to; returns once it is queued, with what
        to await for the broker's acknowledgement."""


@dataclass(frozen=True)
class Replaced:
    """What a profile event replaced: the person's earlier profile, or the
    account the prospect was evaluated with before (its earlier profile, or the
    whole account when it was deleted or the person moved away from it)."""

    person_profile: Json | None = None
    account: EntityState | None = None


@dataclass
class Candidate:
    """A live match that may enroll now, if the caps let it."""

    active: ActiveWorkflow
    person_key: str
    account_key: str
    state: ProspectState
    pending_since: int | None = None


@dataclass
class Planned:
    """An enrollment about to be sent, and what to record once it is."""

    record: Json
    run_id: str
    candidate: Candidate | None = None
    period: str = ""


@dataclass
class Batch:
    """What one record's processing accumulates before it is written out."""

    now: datetime
    candidates: list[Candidate] = field(default_factory=list)
    timers: dict[str, datetime] = field(default_factory=dict)

    def wake(self, person_key: str, moment: datetime) -> None:
        current = self.timers.get(person_key)
        if current is None or moment < current:
            self.timers[person_key] = moment


class Verdict:
    OK = "ok"
    ACCOUNT = "account"
    REP = "rep"
    RUN = "run"


class PartitionMatcher:
    """The matcher's state and decisions for one partition.

    Args:
        partition: the partition number; enrollments go to the same partition.
        partitions: how many partitions the inputs have, to tell which accounts
            belong here.
        state: the partition's namespaces.
        catalog: compiled workflows and the index, shared by the partitions.
        limits: the caps shared with other replicas (Redis).
        outbox: where enrollments and status reports go.
        clock: the time every decision uses.
        settings: the matcher's settings.

    Call `load()` once before the first record; every other method expects the
    caller to process the partition's records one at a time, and to call
    `settle()` before it writes the partition's state out.
    """

    def __init__(
        self,
        partition: int,
        state: PartitionState,
        *,
        partitions: int,
        catalog: Catalog,
        limits: SharedLimits,
        outbox: Outbox,
        clock: Clock,
        settings: MatcherSettings,
    ) -> None:
        self.partition = partition
        self.partitions = partitions
        self.state = state
        self.catalog = catalog
        self.limits = limits
        self.outbox = outbox
        self.clock = clock
        self.settings = settings
        self.active: dict[str, ActiveWorkflow] = {}
        self._signal_limits = SignalLimits(
            window_ms=settings.signal_window_days * 86_400_000,
            kept=settings.signal_occurrences_kept,
        )
        self._figures: dict[str, Json] = {}
        self._dirty_figures: set[str] = set()
        self._last_status_ms = 0
        self._reports_made = 0
        self._unreported: set[str] = set()
        self._reported: dict[str, tuple[Any, ...]] = {}
        self._scheduled: set[str] = set()
        self._day_seen: str | None = None
        self._unsettled: list[tuple[list[str], Sent]] = []
        self._handed_over: list[Awaitable[Any]] = []

    # ------------------------------------------------------------------ start

    async def load(self) -> None:
        """Take up the workflows active in this partition, as its state records."""
        for key, record in list(self.state.meta.scan("act:")):
            if record.get("paused"):
                continue
            workflow_id = key.removeprefix("act:")
            active = await self.catalog.compiled(workflow_id, int(record["v"]))
            self._take_up(active)
        log.info("partition %d: %d active workflows", self.partition, len(self.active))

    def release_all(self) -> None:
        """Forget this partition's workflows (the partition was revoked)."""
        for workflow_id in list(self.active):
            self.catalog.deactivate(workflow_id, self.partition)
        self.active.clear()
        self._scheduled.clear()

    def _take_up(self, active: ActiveWorkflow) -> None:
        self.active[active.id] = active
        if active.scheduled:
            self._scheduled.add(active.id)
        else:
            self._scheduled.discard(active.id)
        self._unreported.add(active.id)
        self.catalog.activate(active, self.partition)

    # ---------------------------------------------------------------- signals

    async def on_signal(self, signal: Json) -> bool:
        """Apply a validated signal record and evaluate who it concerns.

        Returns False when the signal was a duplicate (or too old to count); the
        people are evaluated all the same, which is harmless and keeps a record
        delivered again after a crash from losing its enrollments.
        """
        now = self.clock.now()
        now_ms = to_millis(now) or 0
        kind, account_key = signal["type"], signal["account_key"]
        occurred_ms = to_millis(signal["occurred_at"]) or 0
        keys = {f"signal:{kind}"}
        limits = self._signal_limits
        attributes = signal.get("attributes") or {}
        if signal["scope"] == "COMPANY":
            account = self._account(account_key)
            changed = account.apply_signal(
                signal["signal_id"],
                kind,
                occurred_ms,
                attributes,
                limits=limits,
                now_ms=now_ms,
            )
            if changed:
                self.state.accounts.put(account_key, account.data)
            people = self.state.members.get(account_key) or []
            await self._evaluate(people, keys, account_key, now=now, account=account)
            return changed

        person_key = signal["person_key"]
        person = self._person(person_key)
        changed = person.apply_signal(
            signal["signal_id"],
            kind,
            occurred_ms,
            attributes,
            limits=limits,
            now_ms=now_ms,
        )
        if person.account_key is None:
            person.set_account(account_key)
            changed = True
        if changed:
            self.state.people.put(person_key, person.data)
        self._join(account_key, person_key)
        await self._evaluate([person_key], keys, account_key, now=now)
        return changed

    # --------------------------------------------------------------- profiles

    async def on_profile(self, record: Json) -> None:
        """Apply a validated profile record and evaluate who it concerns. A
        person's profile naming an account of another partition hands the person
        over to it (`_hand_over`)."""
        now = self.clock.now()
        profile = stored_profile(record)
        if profile["kind"] == "ACCOUNT":
            await self._account_profile(profile, now)
        else:
            await self._person_profile(profile, now)

    async def _account_profile(self, profile: Json, now: datetime) -> None:
        account_key = profile["key"]
        account = self._account(account_key)
        people = self.state.members.get(account_key) or []
        if profile["deleted"]:
            self.state.accounts.delete(account_key)
            await self._evaluate(
                people,
                {EVERYTHING},
                account_key,
                now=now,
                replaced=Replaced(account=account),
            )
            return
        before = EntityState(dict(account.data))
        keys = account.set_profile(profile)
        if keys is None:
            return
        self.state.accounts.put(account_key, account.data)
        await self._evaluate(
            people,
            keys,
            account_key,
            now=now,
            account=account,
            replaced=Replaced(account=before),
        )

    async def _person_profile(self, profile: Json, now: datetime) -> None:
        person_key, account_key = profile["key"], profile["account_key"]
        if profile["deleted"]:
            self._forget_person(person_key, expired=True)
            return
        if partition_for(account_key.encode(), self.partitions) != self.partition:
            await self._hand_over(profile)
            return
        person = self._person(person_key)
        before = person.profile
        keys = person.set_profile(profile)
        if keys is None:
            return
        previous = person.account_key
        person.set_account(account_key)
        self.state.people.put(person_key, person.data)
        left = previous if previous is not None and previous != account_key else None
        if left is not None:
            self._leave(left, person_key)
        self._join(account_key, person_key)
        # A person without a profile matched nothing before: no flags to clear.
        replaced = None
        if before is not None:
            replaced = Replaced(
                person_profile=before,
                account=self._account(left) if left is not None else None,
            )
        await self._evaluate(
            [person_key], keys, account_key, now=now, replaced=replaced
        )

    def _forget_person(self, person_key: str, *, expired: bool) -> None:
        """Drop a person from this partition, with their pending matches
        (counted as expired when `expired`)."""
        person = self.state.people.get(person_key)
        if person is None:
            return
        self.state.people.delete(person_key)
        account_key = person.get("account")
        if account_key:
            self._leave(account_key, person_key)
        for workflow_id in self.active:
            key = pair_key(workflow_id, person_key)
            if self.state.pending.get(key) is not None:
                self._drop_pending(workflow_id, key, expired=expired)
        self._write_figures()

    # -------------------------------------------------------------- handovers

    async def _hand_over(self, profile: Json) -> None:
        """Pass a person who moved to an account of another partition on to it.

        The repartitioner sends such a profile here, where the person was, and
        not to the new account: this partition sends it on with the person's
        signals and enrollment history, then forgets the person, so the new
        partition knows whom it takes up before it evaluates them. An older
        profile than the one kept moves nobody. `settle()` waits for the
        handover's acknowledgement, so the tables never forget a person the
        other partition may not have been told about.

        A person not held here yet moved on before their handover from where
        they were arrived: the profile passed on is remembered, so that handover
        follows them when it comes (`_pass_on_late_handover`).
        """
        person_key = profile["key"]
        person = self._person(person_key)
        kept = person.profile
        if kept is not None and kept["updated_at"] > profile["updated_at"]:
            return
        if kept is None:
            self.state.meta.put(f"fwd:{person_key}", profile)
        history = self._history_of(person_key)
        record = {
            "profile": profile,
            "signals": person.kept_signals(),
            "enrollments": history,
        }
        self._handed_over.append(await self.outbox.send_handover(record))
        for workflow_id in history:
            self.state.enrolled.delete(pair_key(workflow_id, person_key))
        self._forget_person(person_key, expired=False)
        log.info(
            "partition %d handed %s over to the partition of %s",
            self.partition,
            person_key,
            profile["account_key"],
        )

    def _history_of(self, person_key: str) -> dict[str, Json]:
        """How the person entered each workflow ever activated here."""
        history: dict[str, Json] = {}
        for key, _ in self.state.meta.scan("act:"):
            workflow_id = key.removeprefix("act:")
            record = self.state.enrolled.get(pair_key(workflow_id, person_key))
            if record is not None:
                history[workflow_id] = {
                    "count": int(record.get("g", 0)),
                    "last_at": record.get("t"),
                    "in_match": bool(record.get("b")),
                }
        return history

    async def on_handover(self, record: Json) -> None:
        """Take up a person handed over by the partition they moved from: merge
        their signals and enrollment history into what this partition knows,
        then apply their profile (or, when a profile as new came first, evaluate
        them again with what was merged). A handover for a person who has moved
        on from here since is passed on after them."""
        now = self.clock.now()
        now_ms = to_millis(now) or 0
        profile = stored_profile(record["profile"])
        person_key = profile["key"]
        if await self._pass_on_late_handover(record, profile):
            return
        person = self._person(person_key)
        for kind, occurrences in record["signals"].items():
            for occurrence in occurrences:
                person.apply_signal(
                    occurrence["signal_id"],
                    kind,
                    to_millis(occurrence["occurred_at"]) or 0,
                    occurrence["attributes"],
                    limits=self._signal_limits,
                    now_ms=now_ms,
                )
        for workflow_id, history in record["enrollments"].items():
            self._merge_history(pair_key(workflow_id, person_key), history)
        kept = person.profile
        if kept is None or kept["updated_at"] < profile["updated_at"]:
            self.state.people.put(person_key, person.data)
            await self._person_profile(profile, now)
            return
        self.state.people.put(person_key, person.data)
        account_key = person.account_key or profile["account_key"]
        await self._evaluate([person_key], {EVERYTHING}, account_key, now=now)

    async def _pass_on_late_handover(self, record: Json, profile: Json) -> bool:
        """Send a handover on to where its person went from here, when they
        were passed on with a profile at least as new before it arrived (they
        moved on, A to B and back, faster than the handover from A travelled);
        returns whether it did."""
        marker = f"fwd:{profile['key']}"
        forwarded = self.state.meta.get(marker)
        if forwarded is None:
            return False
        self.state.meta.delete(marker)
        if forwarded["updated_at"] < profile["updated_at"]:
            return False  # the person came back since: the handover is for here
        passed_on = {**record, "profile": forwarded}
        self._handed_over.append(await self.outbox.send_handover(passed_on))
        log.info(
            "partition %d passed the late handover of %s on to the partition of %s",
            self.partition,
            profile["key"],
            forwarded["account_key"],
        )
        return True

    def _merge_history(self, key: str, history: Json) -> None:
        mine = self.state.enrolled.get(key) or {"g": 0, "t": None, "b": False}
        last = [at for at in (mine.get("t"), to_millis(history["last_at"])) if at]
        self.state.enrolled.put(
            key,
            {
                "g": max(int(mine.get("g", 0)), int(history["count"])),
                "t": max(last) if last else None,
                "b": bool(mine.get("b")) or bool(history["in_match"]),
            },
        )

    # ------------------------------------------------------------- evaluation

    async def _evaluate(
        self,
        person_keys: Iterable[str],
        keys: set[str],
        account_key: str,
        *,
        now: datetime,
        account: EntityState | None = None,
        only: Sequence[ActiveWorkflow] | None = None,
        replaced: Replaced | None = None,
    ) -> None:
        index = self.catalog.index
        if not self.active or (only is None and not index.reads_any(keys)):
            return
        batch = Batch(now)
        account = account if account is not None else self._account(account_key)
        now_ms = to_millis(now) or 0
        window_ms = self._signal_limits.window_ms
        shared = index.account_keys_of(account.profile, account.signal_types())
        before = self._earlier_account_keys(replaced, shared)
        account_facts: dict[str, SignalFact] | None = None
        for person_key in person_keys:
            person = self._person(person_key)
            profile = person.profile
            if profile is None:
                continue
            # The prospect's anchors need only its profile and signal types;
            # most prospects have no candidate, and skip the full state.
            types = person.signal_types()
            anchors = index.person_keys_of(profile, types, shared)
            earlier = None
            if replaced is not None and before is not None:
                earlier_profile = replaced.person_profile or profile
                earlier = index.person_keys_of(earlier_profile, types, before)
            candidates = self._candidates(anchors, keys, only, earlier)
            if not candidates:
                continue
            if account_facts is None:
                account_facts = account.facts(now_ms=now_ms, window_ms=window_ms)
            state = prospect_state(
                person,
                account,
                now_ms=now_ms,
                window_ms=window_ms,
                account_facts=account_facts,
            )
            for active in candidates:
                self._decide(batch, active, person_key, account_key, state)
        await self._finish(batch)

    def _earlier_account_keys(
        self, replaced: Replaced | None, shared: Keys
    ) -> Keys | None:
        """The account's anchor keys before the event, when it replaced a
        profile (None when it replaced none)."""
        if replaced is None:
            return None
        if replaced.account is None:
            return shared
        account = replaced.account
        return self.catalog.index.account_keys_of(
            account.profile, account.signal_types()
        )

    def _candidates(
        self,
        anchors: Keys,
        keys: set[str],
        only: Sequence[ActiveWorkflow] | None,
        earlier: Keys | None = None,
    ) -> list[ActiveWorkflow]:
        """The active workflows a prospect with `anchors` may match, and, when an
        event replaced a profile, those it may have matched with its `earlier`
        anchors: a prospect that lost an anchor is evaluated once more, so its
        flags are cleared."""
        index = self.catalog.index
        if only is not None:
            return [active for active in only if active.admits(anchors)]
        found = index.candidates(keys, anchors)
        if earlier is not None and earlier != anchors:
            found |= index.candidates(keys, earlier)
        active = self.active
        return [active[workflow_id] for workflow_id in found if workflow_id in active]

    def _decide(
        self,
        batch: Batch,
        active: ActiveWorkflow,
        person_key: str,
        account_key: str,
        state: ProspectState,
    ) -> None:
        now = batch.now
        key = pair_key(active.id, person_key)
        matched, moment = active.judge(state, now)
        record = self.state.enrolled.get(key)
        if not matched:
            if record is not None and record.get("b"):
                record["b"] = False
                self.state.enrolled.put(key, record)
            if self.state.pending.get(key) is not None:
                self._drop_pending(active.id, key, expired=True)
        elif record is None or not record.get("b"):
            allowed_at = self._reenrollment_at(active, record)
            if allowed_at is None:
                pass  # enrolled before and never again
            elif allowed_at > now:
                moment = allowed_at if moment is None else min(moment, allowed_at)
            elif active.scheduled:
                self._hold(active.id, key, account_key, now)
            else:
                batch.candidates.append(
                    Candidate(active, person_key, account_key, state)
                )
        if moment is not None:
            batch.wake(person_key, moment)

    def _reenrollment_at(
        self, active: ActiveWorkflow, record: Json | None
    ) -> datetime | None:
        """When the person may enroll (again): the epoch for 'now', None for never."""
        if record is None or not record.get("g"):
            return datetime.min.replace(tzinfo=self.clock.now().tzinfo)
        wait = active.reenroll_after()
        if wait is None:
            return None
        return _from_ms(int(record["t"])) + wait

    # ------------------------------------------------------------- enrolling

    async def _finish(self, batch: Batch) -> None:
        if batch.candidates:
            await self._enroll(batch.candidates, batch.now, period=None)
        self._set_timers(batch.timers)
        self._write_figures()

    async def _enroll(
        self, candidates: Sequence[Candidate], now: datetime, *, period: str | None
    ) -> int:
        """Enroll what the caps allow and hold the rest as pending; returns how
        many enrolled. `period` is the run (None: the realtime day of `now`)."""
        planned: list[Planned] = []
        account_counts: dict[str, int] = {}
        for candidate in candidates:
            run_period = period or _day(now)
            verdict, run_id = await self._claim(candidate, run_period, account_counts)
            if verdict != Verdict.OK:
                self._hold_back(candidate, verdict, now)
                continue
            record = enrollment_record(
                candidate.active,
                candidate.state,
                run_id=run_id,
                mode="LIVE",
                command_id=None,
                person_key=candidate.person_key,
                account_key=candidate.account_key,
                now=now,
            )
            planned.append(Planned(record, run_id, candidate, run_period))
        await self._send(planned)
        for item in planned:
            if item.candidate is not None:
                candidate = item.candidate
                self._record_enrollment(
                    candidate.active,
                    candidate.person_key,
                    candidate.account_key,
                    item.period,
                    now,
                )
        return len(planned)

    async def _claim(
        self, candidate: Candidate, period: str, account_counts: dict[str, int]
    ) -> tuple[str, str]:
        active = candidate.active
        limits = active.workflow.limits
        key = pair_key(active.id, candidate.person_key)
        record = self.state.enrolled.get(key) or {}
        run_id = live_run_id(
            active.id, candidate.person_key, int(record.get("g", 0)) + 1
        )
        cap_key = f"{active.id}{SEP}{candidate.account_key}"
        if limits.max_per_account is not None:
            count = account_counts.get(cap_key)
            if count is None:
                count = self._account_count(cap_key, period)
            if count >= limits.max_per_account:
                return Verdict.ACCOUNT, run_id
        rep = _rep(candidate.state)
        rep_key = None
        if limits.max_per_rep is not None and rep is not None:
            rep_key = self.limits.rep_key(active.id, period, rep)
            if not await self.limits.claim(rep_key, run_id, limits.max_per_rep):
                return Verdict.REP, run_id
        if limits.max_per_run is not None:
            run_key = self.limits.run_key(active.id, period)
            if not await self.limits.claim(run_key, run_id, limits.max_per_run):
                if rep_key is not None:
                    await self.limits.release(rep_key, run_id)
                return Verdict.RUN, run_id
        account_counts[cap_key] = (
            account_counts.get(cap_key, self._account_count(cap_key, period)) + 1
        )
        return Verdict.OK, run_id

    def _account_count(self, cap_key: str, period: str) -> int:
        entry = self.state.meta.get(f"acap:{cap_key}")
        if entry is None or entry.get("p") != period:
            return 0
        return int(entry["n"])

    def _hold_back(self, candidate: Candidate, verdict: str, now: datetime) -> None:
        active = candidate.active
        key = pair_key(active.id, candidate.person_key)
        self._hold(active.id, key, candidate.account_key, now)
        figures = self._figures_of(active.id)
        if verdict == Verdict.ACCOUNT:
            figures["held_account"] = figures.get("held_account", 0) + 1
        else:
            figures["held_rep"] = figures.get("held_rep", 0) + 1
        self._dirty_figures.add(active.id)

    async def _send(self, planned: Sequence[Planned]) -> None:
        """Send what was not sent before; `settle()` records the offsets."""
        fresh = [
            item for item in planned if self.state.emitted.get(item.run_id) is None
        ]
        if not fresh:
            return
        sent = await self.outbox.send_enrollments(
            self.partition, [item.record for item in fresh]
        )
        run_ids = [item.run_id for item in fresh]
        for run_id in run_ids:
            self.state.emitted.put(run_id, UNSETTLED)
        self._unsettled.append((run_ids, sent))
        log.debug("partition %d sent %d enrollments", self.partition, len(fresh))

    async def settle(self) -> int:
        """Wait until the broker acknowledged every handover and enrollment sent
        so far, and record the enrollments' offsets; returns how many
        enrollments there were.

        Raises what the outbox raises when one could not be delivered; the
        partition's state then holds enrollments that may not exist, and must
        not be written out (the batcher stops the worker, and the records are
        processed again). What was not settled stays listed, so a later call
        waits for it again rather than take it as settled.
        """
        for delivery in self._handed_over:
            await delivery
        self._handed_over = []
        highest = -1
        count = 0
        for run_ids, sent in self._unsettled:
            offsets = await sent.offsets()
            for run_id, offset in zip(run_ids, offsets, strict=True):
                self.state.emitted.put(run_id, offset)
            highest = max(highest, *offsets)
            count += len(offsets)
        self._unsettled = []
        if count:
            self._advance_emitted_offset(highest)
        return count

    def _advance_emitted_offset(self, offset: int) -> None:
        current = self.state.emitted.get(EMITTED_UP_TO)
        if current is None or offset > int(current):
            self.state.emitted.put(EMITTED_UP_TO, offset)

    def _record_enrollment(
        self,
        active: ActiveWorkflow,
        person_key: str,
        account_key: str,
        period: str,
        now: datetime,
    ) -> None:
        key = pair_key(active.id, person_key)
        record = self.state.enrolled.get(key) or {"g": 0}
        record = {"g": int(record.get("g", 0)) + 1, "t": to_millis(now), "b": True}
        self.state.enrolled.put(key, record)
        if self.state.pending.get(key) is not None:
            self._drop_pending(active.id, key, expired=False)
        if active.workflow.limits.max_per_account is not None:
            cap_key = f"{active.id}{SEP}{account_key}"
            count = self._account_count(cap_key, period)
            self.state.meta.put(f"acap:{cap_key}", {"p": period, "n": count + 1})
        figures = self._figures_of(active.id)
        figures["enrolled_total"] = figures.get("enrolled_total", 0) + 1
        self._dirty_figures.add(active.id)

    def recover(self, found: Sequence[Json]) -> None:
        """Apply live enrollments that were sent and acknowledged just before a
        crash, found in the topic but not in the tables, as if their
        acknowledgement had just come: the person enrolled, their pending
        match, the account's count for the run and the figures.

        `services.matcher.outbox.reconcile` finds them (and records their run
        ids) when the partition is taken up; call this after `load()`, before
        the first record.
        """
        for record in found:
            workflow_id, person_key = record["workflow_id"], record["person_key"]
            key = pair_key(workflow_id, person_key)
            epoch = int((self.state.enrolled.get(key) or {}).get("g", 0)) + 1
            if live_run_id(workflow_id, person_key, epoch) != record["run_id"]:
                continue  # an earlier enrollment, recorded already
            at = _from_ms(to_millis(record["enrolled_at"]) or 0)
            active = self.active.get(workflow_id)
            if active is None:  # paused since: only who enrolled matters
                enrolled = {"g": epoch, "t": to_millis(at), "b": True}
                self.state.enrolled.put(key, enrolled)
                self.state.pending.delete(key)
                continue
            period = self._period_of(active, at)
            self._record_enrollment(
                active, person_key, record["account_key"], period, at
            )
        self._write_figures()

    def _period_of(self, active: ActiveWorkflow, at: datetime) -> str:
        """The run an enrollment made at `at` belonged to: the realtime day, or
        the scheduled run that was due (its next run is not advanced before the
        run is written out)."""
        due = self._figures_of(active.id).get("next_run_at")
        if active.scheduled and due is not None and int(due) <= (to_millis(at) or 0):
            return _from_ms(int(due)).isoformat()
        return _day(at)

    # ---------------------------------------------------------------- pending

    def _hold(
        self, workflow_id: str, key: str, account_key: str, now: datetime
    ) -> None:
        if self.state.pending.get(key) is not None:
            return
        self.state.pending.put(key, {"s": to_millis(now), "a": account_key})
        figures = self._figures_of(workflow_id)
        figures["pending"] = figures.get("pending", 0) + 1
        self._dirty_figures.add(workflow_id)

    def _drop_pending(self, workflow_id: str, key: str, *, expired: bool) -> None:
        self.state.pending.delete(key)
        figures = self._figures_of(workflow_id)
        figures["pending"] = max(0, figures.get("pending", 0) - 1)
        if expired:
            figures["expired"] = figures.get("expired", 0) + 1
        self._dirty_figures.add(workflow_id)

    # ----------------------------------------------------------------- timers

    def _set_timers(self, timers: dict[str, datetime]) -> None:
        for person_key, moment in timers.items():
            minute = _minute_key(math.ceil(moment.timestamp() * 1000 / MINUTE_MS))
            due = self.state.timers.get(minute) or []
            if person_key not in due:
                due.append(person_key)
                self.state.timers.put(minute, due)

    async def _wake_due(self, now: datetime) -> None:
        now_minute = int((to_millis(now) or 0) // MINUTE_MS)
        cursor = self.state.meta.get("cursor")
        start = now_minute if cursor is None else int(cursor) + 1
        due: list[str] = []
        for minute in range(start, now_minute + 1):
            key = _minute_key(minute)
            people = self.state.timers.get(key)
            if people:
                due.extend(people)
                self.state.timers.delete(key)
        if cursor is None or now_minute > int(cursor):
            self.state.meta.put("cursor", now_minute)
        if not due:
            return
        sensitive = [
            active
            for active in self.catalog.index.clock_sensitive()
            if self.active.get(active.id) is active
        ]
        by_account: dict[str, list[str]] = {}
        for person_key in dict.fromkeys(due):
            person = self.state.people.get(person_key)
            if person is not None and person.get("account"):
                by_account.setdefault(person["account"], []).append(person_key)
        for account_key, people in by_account.items():
            await self._evaluate(people, set(), account_key, now=now, only=sensitive)

    # ------------------------------------------------------------------- runs

    async def on_tick(self) -> None:
        """Do what is due: timers, scheduled runs, the next day of realtime caps,
        and the periodic status report.

        A tick costs nothing per realtime workflow except when the day changes:
        a partition may have thousands.
        """
        now = self.clock.now()
        await self._wake_due(now)
        for workflow_id in sorted(self._scheduled):
            await self._run_if_due(self.active[workflow_id], now)
        today = _day(now)
        if today != self._day_seen:
            for active in list(self.active.values()):
                if not active.scheduled:
                    await self._realtime_day(active, now)
            self._day_seen = today
        await self._report_if_due(now)

    async def _run_if_due(self, active: ActiveWorkflow, now: datetime) -> None:
        figures = self._figures_of(active.id)
        next_ms = figures.get("next_run_at")
        if next_ms is None:
            self._plan_next_run(active, now)
            return
        if (to_millis(now) or 0) < int(next_ms):
            return
        period = _from_ms(int(next_ms)).isoformat()
        await self.run_now(active, period=period)
        self._plan_next_run(active, now)

    def _plan_next_run(self, active: ActiveWorkflow, after: datetime) -> None:
        moment = active.workflow.schedule.next_run(after)
        figures = self._figures_of(active.id)
        figures["next_run_at"] = to_millis(moment) if moment else None
        self._dirty_figures.add(active.id)
        self._write_figures()

    async def _realtime_day(self, active: ActiveWorkflow, now: datetime) -> None:
        figures = self._figures_of(active.id)
        today = _day(now)
        if figures.get("day") == today:
            return
        figures["day"] = today
        self._dirty_figures.add(active.id)
        if figures.get("pending", 0) > 0:
            await self.run_now(active, period=today)
        else:
            self._write_figures()

    async def run_now(self, active: ActiveWorkflow, *, period: str) -> int:
        """Release the workflow's pending matches as one run; returns how many
        enrolled. Matches that no longer hold or aged out are dropped (expired);
        what the caps hold back stays pending."""
        now = self.clock.now()
        figures = self._figures_of(active.id)
        figures["held_account"] = 0
        figures["held_rep"] = 0
        candidates = self._pending_candidates(active, now)
        enrolled = await self._enroll(candidates, now, period=period)
        figures["last_run_at"] = to_millis(now)
        figures["last_run_enrolled"] = enrolled
        self._dirty_figures.add(active.id)
        self._write_figures()
        await self._report(active.id, now)
        log.info(
            "partition %d ran %s (%s): %d enrolled, %d still pending",
            self.partition,
            active.id,
            period,
            enrolled,
            figures.get("pending", 0),
        )
        return enrolled

    def _pending_candidates(
        self, active: ActiveWorkflow, now: datetime
    ) -> list[Candidate]:
        now_ms = to_millis(now) or 0
        max_age_ms = self.settings.pending_max_age_days * 86_400_000
        window_ms = self._signal_limits.window_ms
        accounts: dict[str, tuple[EntityState, dict[str, SignalFact]]] = {}
        candidates: list[Candidate] = []
        for key, entry in list(self.state.pending.scan(active.id + SEP)):
            _, person_key = split_pair(key)
            person = self._person(person_key)
            record = self.state.enrolled.get(key)
            if (
                now_ms - int(entry["s"]) > max_age_ms
                or person.profile is None
                or (record is not None and record.get("b"))
            ):
                self._drop_pending(active.id, key, expired=True)
                continue
            account_key = str(entry["a"])
            if account_key not in accounts:
                account = self._account(account_key)
                facts = account.facts(now_ms=now_ms, window_ms=window_ms)
                accounts[account_key] = (account, facts)
            account, facts = accounts[account_key]
            state = prospect_state(
                person, account, now_ms=now_ms, window_ms=window_ms, account_facts=facts
            )
            if not active.matches(state, now):
                self._drop_pending(active.id, key, expired=True)
                continue
            candidates.append(
                Candidate(active, person_key, account_key, state, int(entry["s"]))
            )
        candidates.sort(key=lambda c: (c.pending_since or 0, c.person_key))
        return candidates

    # ----------------------------------------------------------------- status

    async def _report_if_due(self, now: datetime) -> None:
        """Report the workflows whose reported figures changed since their last
        report, and every tenth time all of them (the topic is compacted: its
        readers keep the newest report of each workflow and partition)."""
        now_ms = to_millis(now) or 0
        if now_ms - self._last_status_ms < self.settings.status_interval_s * 1000:
            return
        self._last_status_ms = now_ms
        self._reports_made += 1
        everything = self._reports_made % FULL_REPORT_EVERY == 1
        due = (
            self.active.keys() if everything else self._unreported & self.active.keys()
        )
        for workflow_id in sorted(due):
            await self._report(workflow_id, now, unchanged_too=everything)

    async def _report(
        self,
        workflow_id: str,
        now: datetime,
        preview: Json | None = None,
        *,
        unchanged_too: bool = True,
    ) -> None:
        record = status_record(
            workflow_id,
            self.partition,
            self._figures_of(workflow_id),
            now=now,
            preview=preview,
        )
        if preview is None:
            self._unreported.discard(workflow_id)
            reported = tuple(record[name] for name in REPORTED_FIGURES)
            if not unchanged_too and self._reported.get(workflow_id) == reported:
                return
            self._reported[workflow_id] = reported
        await self.outbox.send_status(record)

    def figures(self, workflow_id: str) -> Json:
        """The partition's figures for a workflow (pending, held, expired, runs)."""
        return dict(self._figures_of(workflow_id))

    def _figures_of(self, workflow_id: str) -> Json:
        figures = self._figures.get(workflow_id)
        if figures is None:
            figures = self.state.meta.get(f"run:{workflow_id}") or {}
            self._figures[workflow_id] = figures
        return figures

    def _write_figures(self) -> None:
        self._unreported.update(self._dirty_figures)
        for workflow_id in self._dirty_figures:
            self.state.meta.put(f"run:{workflow_id}", self._figures[workflow_id])
        self._dirty_figures.clear()

    # ---------------------------------------------------------------- control

    async def on_control(self, command: Json) -> None:
        """Carry out one control command addressed to this partition.

        Raises DefinitionMissingError when the workflow version never appears in
        the definition log.
        """
        kind = command["kind"]
        if kind == "ACTIVATE":
            await self._activate(command)
        elif kind == "PAUSE":
            self._pause(command)
        elif kind == "PREVIEW":
            await self._preview(command)
        elif kind in ("TEST_RUN", "DRY_RUN"):
            await self._trial(command)
        else:
            raise ValueError(f"expected a control kind, got {kind!r}")

    async def _activate(self, command: Json) -> None:
        workflow_id = command["workflow_id"]
        previous = self.state.meta.get(f"act:{workflow_id}")
        if previous is not None and previous.get("cmd") == command["command_id"]:
            return  # the same command delivered again
        active = await self.catalog.compiled(workflow_id, command["workflow_version"])
        timing = command.get("execution_timing") or active.workflow.timing.upper()
        now = self.clock.now()
        self.state.meta.put(
            f"act:{workflow_id}",
            {
                "v": active.version,
                "cmd": command["command_id"],
                "timing": timing,
                "at": to_millis(now),
                "paused": False,
            },
        )
        self._take_up(active)
        if active.scheduled:
            self._plan_next_run(active, now)
        log.info(
            "partition %d activated %s v%d (%s)",
            self.partition,
            workflow_id,
            active.version,
            timing,
        )
        if timing == "ALL_CURRENT":
            await self._enroll_current(active, now)
        else:
            self._mark_current(active, now)

    async def _enroll_current(self, active: ActiveWorkflow, now: datetime) -> None:
        for account_key, people in self._people_by_account():
            await self._evaluate(people, set(), account_key, now=now, only=[active])

    def _mark_current(self, active: ActiveWorkflow, now: datetime) -> None:
        """Record who matches at activation, so only later matches enroll."""
        for person_key, _, state in self._scan_states(active, now):
            key = pair_key(active.id, person_key)
            if self.state.enrolled.get(key) is not None:
                continue
            if active.matches(state, now):
                self.state.enrolled.put(key, {"g": 0, "t": None, "b": True})

    def _pause(self, command: Json) -> None:
        workflow_id = command["workflow_id"]
        record = self.state.meta.get(f"act:{workflow_id}")
        if record is None or record.get("paused"):
            return
        record["paused"] = True
        self.state.meta.put(f"act:{workflow_id}", record)
        self.active.pop(workflow_id, None)
        self._scheduled.discard(workflow_id)
        self.catalog.deactivate(workflow_id, self.partition)
        log.info("partition %d paused %s", self.partition, workflow_id)

    async def _preview(self, command: Json) -> None:
        active = await self.catalog.compiled(
            command["workflow_id"], command["workflow_version"]
        )
        now = self.clock.now()
        matching = 0
        examples: list[str] = []
        for person_key, _, state in self._scan_states(active, now):
            if active.matches(state, now):
                matching += 1
                if len(examples) < PREVIEW_EXAMPLES:
                    examples.append(person_key)
        preview = {
            "command_id": command["command_id"],
            "matching": matching,
            "examples": examples,
        }
        await self._report(active.id, now, preview=preview)

    async def _trial(self, command: Json) -> None:
        command_id = command["command_id"]
        if self.state.meta.get(f"test:{command_id}") is not None:
            return  # finished before; the command was delivered again
        active = await self.catalog.compiled(
            command["workflow_id"], command["workflow_version"]
        )
        mode = "TEST" if command["kind"] == "TEST_RUN" else "DRY_RUN"
        limit = command.get("limit")
        now = self.clock.now()
        planned: list[Planned] = []
        slots = self.limits.test_key(command_id)
        for person_key, account_key, state in self._scan_states(active, now):
            if not active.matches(state, now):
                continue
            if limit is not None and not await self.limits.claim(
                slots, person_key, int(limit)
            ):
                break
            run_id = trial_run_id(command_id, person_key)
            record = enrollment_record(
                active,
                state,
                run_id=run_id,
                mode=mode,
                command_id=command_id,
                person_key=person_key,
                account_key=account_key,
                now=now,
            )
            planned.append(Planned(record, run_id))
        await self._send(planned)
        self.state.meta.put(f"test:{command_id}", {"n": len(planned)})
        log.info(
            "partition %d %s %s: %d prospects",
            self.partition,
            mode,
            command_id,
            len(planned),
        )

    # ------------------------------------------------------------------ scans

    def _people_by_account(self) -> list[tuple[str, list[str]]]:
        return [(key, list(people)) for key, people in self.state.members.scan()]

    def _scan_states(
        self, active: ActiveWorkflow, now: datetime
    ) -> Iterable[tuple[str, str, ProspectState]]:
        """Every person of the partition with a profile, with their state."""
        now_ms = to_millis(now) or 0
        window_ms = self._signal_limits.window_ms
        for account_key, people in self._people_by_account():
            account = self._account(account_key)
            facts = account.facts(now_ms=now_ms, window_ms=window_ms)
            for person_key in people:
                person = self._person(person_key)
                if person.profile is None:
                    continue
                yield (
                    person_key,
                    account_key,
                    prospect_state(
                        person,
                        account,
                        now_ms=now_ms,
                        window_ms=window_ms,
                        account_facts=facts,
                    ),
                )

    # ------------------------------------------------------------------ state

    def _person(self, person_key: str) -> EntityState:
        return EntityState(self.state.people.get(person_key))

    def _account(self, account_key: str) -> EntityState:
        return EntityState(self.state.accounts.get(account_key))

    def _join(self, account_key: str, person_key: str) -> None:
        people = self.state.members.get(account_key) or []
        if person_key not in people:
            people.append(person_key)
            self.state.members.put(account_key, people)

    def _leave(self, account_key: str, person_key: str) -> None:
        people = self.state.members.get(account_key) or []
        if person_key in people:
            people.remove(person_key)
            if people:
                self.state.members.put(account_key, people)
            else:
                self.state.members.delete(account_key)


def _rep(state: ProspectState) -> str | None:
    """The rep a prospect counts against: the person's owner, else the account's."""
    owner = state.person.get("owner")
    if owner:
        return str(owner)
    if state.account is not None and state.account.get("owner"):
        return str(state.account["owner"])
    return None


def _day(now: datetime) -> str:
    return now.date().isoformat()


def _from_ms(value: int) -> datetime:
    from services.matcher.state import from_millis

    return from_millis(value)


def _minute_key(minute: int) -> str:
    return f"{minute:012d}"


__all__ = ["Outbox", "PartitionMatcher", "timedelta"]
