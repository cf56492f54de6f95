"""Settings of the api (environment prefix `SIGNALFLOW_API_`)."""

from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
