"""The action services: one consumer group per action type, each one side effect."""
