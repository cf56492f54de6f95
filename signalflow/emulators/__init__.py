"""Local stand-ins for the SaaS APIs the action services call.

Each vendor has a small emulator of the part of its API signalflow uses, served
over real HTTP (Salesforce over HTTPS, since its client only speaks https) or real
SMTP, so the real client libraries run end to end in tests and in the demo:

- `salesforce`: REST query (a small SOQL subset) and sobjects;
- `hubspot`: CRM v3 objects, search, owners and v4 default associations;
- `slack`: the Web API methods for users, DMs, channels and user groups;
- `outreach`: the JSON:API resources for prospects, sequences and their states;
- `salesloft`: people, cadences and cadence memberships (API v2);
- `openai`: `POST /v1/chat/completions` with deterministic answers;
- `smtp`: an aiosmtpd server that keeps every message it accepts.

Every emulator records what it received and can be told to fail (`base`);
`server` runs one or all of them on loopback ports, and `cli` serves them for the
demo. This package imports nothing heavy itself: import the module you need.
"""
