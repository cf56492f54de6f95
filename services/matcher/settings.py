"""Settings of the matcher (environment prefix `SIGNALFLOW_MATCHER_`)."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class MatcherSettings(BaseSettings):
    """How one matcher replica serves, keeps state and paces its timers."""

    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_MATCHER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    #: Where RocksDB keeps the table partitions this replica owns. Two replicas on
    #: one machine need two directories.
    data_dir: Path = Path.home() / ".cache" / "signalflow" / "matcher"
    #: How often each owned partition is woken to release what is due: timers of
    #: time-based predicates, scheduled runs, pending entries that aged out.
    tick_interval_s: float = Field(default=15.0, gt=0)
    #: How often each partition reports pending counts on `matcher-status`.
    status_interval_s: float = Field(default=60.0, gt=0)
    #: A pending match older than this is dropped (and counted as expired).
    pending_max_age_days: int = Field(default=14, ge=1)
    #: Signals older than this no longer count towards a type's recent count.
    signal_window_days: int = Field(default=365, ge=1)
    #: At most this many recent occurrences are kept per signal type and entity;
    #: a duplicate signal id is recognised among them.
    signal_occurrences_kept: int = Field(default=50, ge=1)
    #: How long a definition the control topic names may take to appear in the
    #: definition log before the command is dead-lettered.
    definition_wait_s: float = Field(default=30.0, gt=0)
    #: For tests and demos only: read "now" from this file (an ISO 8601 time)
    #: instead of the system clock, so schedules can be driven from outside.
    clock_file: Path | None = None
    #: How long the group waits for a silent replica before giving its
    #: partitions to others (a killed replica's partitions wait this long).
    session_timeout_s: float = Field(default=30.0, gt=0)
    #: Offsets are committed at least this often (faust's commit interval).
    commit_interval_s: float = Field(default=1.0, gt=0)
    #: What the records change is written to the tables, and the records are
    #: acknowledged, at least this often (after every enrollment sent meanwhile
    #: is acknowledged by the broker), ...
    flush_interval_s: float = Field(default=0.5, gt=0)
    #: ... or after this many records, whichever comes first. A crash makes the
    #: records since the last write be processed again.
    flush_records: int = Field(default=5000, ge=1)
    #: How many decoded values each table partition keeps in memory for reading
    #: again (people, accounts, enrollment records, ...).
    cache_entries: int = Field(default=20_000, ge=0)
