"""Settings of the matcher (environment prefix `SIGNALFLOW_MATCHER_`)."""

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class MatcherSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_MATCHER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8002
    #: Where RocksDB keeps the table partitions this replica owns.
    data_dir: Path = Path.home() / ".cache" / "signalflow" / "matcher"
