"""signalflow: signal-driven campaign workflows on Apache Kafka.

The package holds what the services share: settings, the topic table, the event
contracts, Kafka plumbing, the workflow model, local infrastructure and the CLI.
Each service lives in `services/<name>/`.
"""
