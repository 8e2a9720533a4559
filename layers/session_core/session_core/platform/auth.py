"""Cognito JWT verification, shared by the WebSocket authorizer and the SAM CLI
fallback of the HTTP functions.

It applies the same rules as API Gateway's JWT authorizer: RS256 signature
against the pool's JWKS, exp/nbf, issuer, and audience ("aud" for ID tokens,
"client_id" for access tokens), plus Cognito's token_use.
"""

from __future__ import annotations

from functools import cache

import jwt

# Tokens over this size are refused before any parsing (API Gateway's own
# header limits are of the same order).
MAX_TOKEN_BYTES = 8 * 1024
# Clock skew tolerated on exp/nbf/iat.
LEEWAY_SECONDS = 5


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or meant for someone else.

    The message is for logs only; callers answer a bare 401.
    """


class TokenVerifier:
    """Verifies Cognito tokens for one issuer and a set of app client IDs.

    The JWKS is fetched once and cached for the life of the execution
    environment (PyJWKClient, lifespan below); an unknown ``kid`` triggers one
    refetch, so rotated keys are picked up without a cold start.
    """

    def __init__(self, issuer: str, audiences: list[str] | tuple[str, ...], jwks_url: str | None = None,
                 jwks_timeout: float = 3.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.audiences = frozenset(a for a in audiences if a)
        self.jwks_url = jwks_url or f"{self.issuer}/.well-known/jwks.json"
        self._jwks = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=3600, timeout=jwks_timeout)

    def verify(self, token: str | None) -> dict:
        if not token:
            raise InvalidToken("missing token")
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"malformed token: {exc}") from None
        if header.get("alg") != "RS256":
            raise InvalidToken("unsupported alg")
        try:
            key = self._jwks.get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientConnectionError as exc:
            raise InvalidToken(f"jwks unreachable: {exc}") from None
        except jwt.PyJWKClientError as exc:
            raise InvalidToken(f"unknown signing key: {exc}") from None
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        token_use = claims.get("token_use")
        if token_use == "id":
            audience = claims.get("aud")
        elif token_use == "access":
            audience = claims.get("client_id")
        else:
            raise InvalidToken("token_use is neither id nor access")
        if not isinstance(audience, str) or audience not in self.audiences:
            raise InvalidToken("token issued for another client")
        return claims


@cache
def configured_verifier() -> TokenVerifier:
    """The verifier for this stack's pool (JWT_ISSUER, JWT_AUDIENCE, optional JWKS_URL)."""
    from .settings import settings

    s = settings()
    return TokenVerifier(s.jwt_issuer, s.jwt_audiences, jwks_url=s.jwks_url)
