"""Errors of the local infrastructure: the broker and Redis a developer runs.

    LocalInfraError          anything that keeps local Kafka or Redis from running
     +-- MissingToolError     java, mvn or redis-server absent or too old
     +-- AlreadyRunningError  a different layout already runs from this state dir
     +-- StartupError         a process exited or never answered (retryable)

None of them is retried by the code that raises it: each reaches the developer with
what to install or where the log is.
"""

from __future__ import annotations


class LocalInfraError(Exception):
    """Local Kafka or Redis could not be fetched, started or stopped."""

    retryable = False


class MissingToolError(LocalInfraError):
    """A program the local infrastructure needs is not installed or too old."""


class AlreadyRunningError(LocalInfraError):
    """The state dir already runs something other than what was asked for."""


class StartupError(LocalInfraError):
    """A started process exited early or did not answer in time."""

    retryable = True
