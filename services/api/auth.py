"""Bearer-token authentication of every route but `/health`.

A request must carry `Authorization: Bearer <token>` with one of the tokens in
`SIGNALFLOW_API_TOKENS`. Anything else is answered 401 with
`WWW-Authenticate: Bearer` before the route runs, so no route reveals data (or
whether an object exists) without a token. Tokens are compared in constant time
and never logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

log = logging.getLogger(__name__)

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="One of the tokens configured in SIGNALFLOW_API_TOKENS.",
)


class Unauthorized(HTTPException):
    """401 with the challenge RFC 6750 asks for."""

    def __init__(self, detail: str) -> None:
        super().__init__(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail=detail,
            headers={"WWW-Authenticate": "Bearer"},
        )


class TokenChecker:
    """Accepts a request when its bearer token is one of `tokens`."""

    def __init__(self, tokens: list[str]) -> None:
        self._tokens = [token.encode() for token in tokens]

    def accepts(self, token: str) -> bool:
        presented = token.encode()
        # Compare against every token, so timing reveals neither which nor how many.
        matches = [hmac.compare_digest(presented, known) for known in self._tokens]
        return any(matches)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """Dependency: raise 401 unless the request carries an accepted bearer token."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("Send Authorization: Bearer <token>.")
    checker: TokenChecker = request.app.state.token_checker
    if not checker.accepts(credentials.credentials):
        log.info("rejected a request to %s with a wrong token", request.url.path)
        raise Unauthorized("The bearer token is not accepted.")
