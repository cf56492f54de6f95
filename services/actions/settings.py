"""Settings of the action services (environment prefix `SIGNALFLOW_ACTIONS_`)."""

from pydantic_settings import BaseSettings, SettingsConfigDict

from signalflow.topics import ActionType


class ActionSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNALFLOW_ACTIONS_", extra="ignore")

    host: str = "127.0.0.1"
    #: Health ports are `base_port` plus the action type's position in `ActionType`,
    #: so every action service of one host gets its own.
    base_port: int = 8010

    def port_for(self, action: ActionType) -> int:
        return self.base_port + list(ActionType).index(action)
