"""The workflows this replica evaluates, compiled once, and their index.

Definitions come from the definition log (`signalflow.definitions.DefinitionLog`
in the worker). A control command names a workflow version that the log may not
have read yet (the api writes the definition, then the command); `compiled()`
waits for it, within a limit.

Activation is per partition (each partition receives its own copy of a command),
so the catalog counts the partitions a workflow is active in and keeps it in the
index while at least one has it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Protocol

from services.matcher.active import ActiveWorkflow, compile_workflow
from services.matcher.index import AudienceIndex
from signalflow.workflow import Audience, Workflow
from signalflow.workflow.filters import InAudience

log = logging.getLogger(__name__)


class DefinitionSource(Protocol):
    """Where definitions are read from; `DefinitionLog` is one."""

    def workflow(
        self, workflow_id: str, version: int | None = None
    ) -> Workflow | None: ...

    def audience(
        self, audience_id: str, version: int | None = None
    ) -> Audience | None: ...

    def audiences(self) -> dict[str, Audience]: ...


class DefinitionMissingError(LookupError):
    """A command names a workflow version, or its audience, that never appeared.

    Not retryable: the command goes to dead-letters.
    """

    retryable = False


class Catalog:
    """Compiled workflow versions and the index of those active somewhere here.

    Args:
        source: the definitions.
        wait_s: how long `compiled()` waits for a definition to appear.
        poll_s: how often it looks again meanwhile.
    """

    def __init__(
        self, source: DefinitionSource, *, wait_s: float = 30.0, poll_s: float = 0.1
    ) -> None:
        self.source = source
        self.index = AudienceIndex()
        self._wait_s = wait_s
        self._poll_s = poll_s
        self._compiled: dict[tuple[str, int], ActiveWorkflow] = {}
        self._partitions: dict[str, set[int]] = {}

    async def compiled(self, workflow_id: str, version: int) -> ActiveWorkflow:
        """The workflow version compiled against its audience's latest version.

        Waits up to `wait_s` for the definitions to appear; raises
        DefinitionMissingError when they do not.
        """
        cached = self._compiled.get((workflow_id, version))
        if cached is not None:
            return cached
        deadline = time.monotonic() + self._wait_s
        while True:
            active = self._try_compile(workflow_id, version)
            if active is not None:
                self._compiled[(workflow_id, version)] = active
                return active
            if time.monotonic() >= deadline:
                raise DefinitionMissingError(
                    f"expected workflow {workflow_id!r} version {version} and its "
                    f"audience in the definition log within {self._wait_s}s"
                )
            await asyncio.sleep(self._poll_s)

    def cached(self, workflow_id: str, version: int) -> ActiveWorkflow | None:
        return self._compiled.get((workflow_id, version))

    def _try_compile(self, workflow_id: str, version: int) -> ActiveWorkflow | None:
        workflow = self.source.workflow(workflow_id, version)
        if workflow is None:
            return None
        audience = self.source.audience(workflow.audience_id)
        if audience is None:
            return None
        return compile_workflow(workflow, version, audience, self._members(audience))

    def _members(self, audience: Audience) -> dict[str, Audience]:
        """The audiences `audience` names in membership predicates, transitively:
        all that compiling it needs (looking each up, rather than copying every
        audience there is for each of thousands of workflows)."""
        found: dict[str, Audience] = {}
        waiting = [audience]
        while waiting:
            for node in waiting.pop().filter.walk():
                if not isinstance(node, InAudience) or node.audience_id in found:
                    continue
                member = self.source.audience(node.audience_id)
                if member is not None:
                    found[node.audience_id] = member
                    waiting.append(member)
        return found

    def activate(self, active: ActiveWorkflow, partition: int) -> None:
        """Mark `active` as evaluated in `partition`; index it."""
        partitions = self._partitions.setdefault(active.id, set())
        current = self.index.get(active.id)
        if current is not active and (
            current is None or current.version <= active.version
        ):
            self.index.add(active)
        partitions.add(partition)

    def deactivate(self, workflow_id: str, partition: int) -> None:
        """Stop evaluating a workflow in `partition`; unindex it when no partition
        of this replica has it any more."""
        partitions = self._partitions.get(workflow_id)
        if partitions is None:
            return
        partitions.discard(partition)
        if not partitions:
            del self._partitions[workflow_id]
            self.index.remove(workflow_id)
