"""Connectors: the one place each vendor's API is called from.

One module per vendor (`salesforce`, `hubspot`, `slack`, `smtp`, `outreach`,
`salesloft`, `openai`), each an async class used as `async with Connector(...)`,
built on the vendor's real client library or on httpx. `http` holds what the httpx
connectors share, `limits` the concurrency and rate limits every connector applies,
`crm` and `sequencing` the vendor-neutral shapes the actions program against.

Every failure reaches callers as `services.actions.errors.ActionError`.
"""
