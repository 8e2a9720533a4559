"""The HTTP API's JWT authorizer.

API Gateway's checks (developer guide, "Control access to HTTP APIs with JWT authorizers"): the token
(with or without "Bearer ") from the identity source, an RSA signature by the key of the issuer's JWKS
that the token's ``kid`` names, ``iss`` equal to the configured issuer, ``aud`` in the configured audience
(``client_id`` when the token has no ``aud``), ``exp`` in the future, ``nbf`` and ``iat`` not.

The emulator is stricter in what API Gateway does not document, and the end-to-end security suite
(tests/e2e/security/test_jwt_attacks.py) holds it to that: only RS256 (what Cognito signs with), tokens of
at most 8 KB, a ``sub``, and Cognito's ``token_use``: an ID token's ``aud`` or an access token's
``client_id`` must be one of the audience, as a single string. Cognito issues no token these refuse to
the pool's app client, so a real client never sees the difference.

It verifies tokens itself, with PyJWT, rather than with the product's verifier, so a bug in the
product's verifier cannot hide behind the emulator that tests it.
"""

from __future__ import annotations

import jwt

ALGORITHM = "RS256"
MAX_TOKEN_BYTES = 8 * 1024
# Cognito's token_use -> the claim that names the app client the token was issued to.
AUDIENCE_CLAIM = {"id": "aud", "access": "client_id"}
# API Gateway caches the issuer's public keys for up to two hours; an unknown kid refetches them.
JWKS_LIFESPAN_SECONDS = 7200


class Unauthorized(Exception):
    """The token is missing or invalid. The message is for the stack's log; the caller gets a bare 401."""


class JwtVerifier:
    """Verifies tokens for one authorizer: its issuer, its audience list and the JWKS serving the issuer's keys
    (locally moto's, which is not at the issuer's URL; None when the issuer is no local user pool)."""

    def __init__(self, issuer: str, audiences: tuple[str, ...] | list[str], jwks_url: str | None, *,
                 jwks_timeout: float = 3.0) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self._jwks = (jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=JWKS_LIFESPAN_SECONDS,
                                      timeout=jwks_timeout) if jwks_url else None)

    def verify(self, token: str | None) -> dict:
        """The token's claims, or Unauthorized."""
        if token and token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            raise Unauthorized("no token in the identity source")
        if len(token) > MAX_TOKEN_BYTES:
            raise Unauthorized("token over 8 KB")
        if self._jwks is None:
            raise Unauthorized(f"the keys of issuer {self.issuer} are not available locally")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        if header.get("alg") != ALGORITHM:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not {ALGORITHM}")
        try:
            key = self._jwks.get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientError as exc:  # an unreachable JWKS included: API Gateway denies then too
            raise Unauthorized(f"no key for kid {header.get('kid')!r}: {exc}") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=[ALGORITHM], issuer=self.issuer,
                                options={"require": ["exp", "iss", "sub", "token_use"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        audience_claim = AUDIENCE_CLAIM.get(claims["token_use"])
        if audience_claim is None:
            raise Unauthorized("token_use is neither id nor access")
        audience = claims.get(audience_claim)
        if not isinstance(audience, str) or audience not in self.audiences:
            raise Unauthorized(f"the token's {audience_claim} is not in the authorizer's audience")
        return claims
