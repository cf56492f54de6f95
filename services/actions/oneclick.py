"""The one-click email a notification can carry: a `mailto:` link to the prospect.

With the email-template toggle on, a Slack or email notification includes a
ready-to-send email (subject and body, rendered from the step's email template)
and a link that opens it, addressed to the prospect, in the reader's mail client.
"""

from __future__ import annotations

from urllib.parse import quote


def mailto(to: str, subject: str, body: str) -> str:
    """A `mailto:` link that opens an email to `to` with `subject` and `body`.

    Every part is percent-encoded, so the link holds no raw `&`, `<`, `>` or
    line break from the values.
    """
    return (
        f"mailto:{quote(to, safe='@')}?subject={quote(subject, safe='')}"
        f"&body={quote(body, safe='')}"
    )
