"""The HTTP API's JWT authorizer, as API Gateway applies it (developer guide, "Control access to HTTP
APIs with JWT authorizers"): the token (with or without "Bearer ") from the identity source, an RSA
signature by a key of the issuer's JWKS named by the token's ``kid``, ``iss`` equal to the configured
issuer, ``aud`` in the configured audience (``client_id`` instead only when the token has no ``aud``),
``exp`` in the future, ``nbf`` and ``iat`` not. API Gateway looks at no other claim: Cognito's
``token_use`` is not checked, so both ID and access tokens of the pool's app client pass.

The emulator verifies tokens itself, with PyJWT, rather than with the product's verifier, so a bug in
the product's verifier cannot hide behind the emulator that tests it.
"""

from __future__ import annotations

import jwt

# API Gateway supports only RSA-based algorithms.
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
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
        if self._jwks is None:
            raise Unauthorized(f"the keys of issuer {self.issuer} are not available locally")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"malformed token: {exc}") from None
        if header.get("alg") not in RSA_ALGORITHMS:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not RSA-based")
        try:
            key = self._jwks.get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientError as exc:  # unreachable JWKS included: API Gateway denies then too
            raise Unauthorized(f"no key for kid {header.get('kid')!r}: {exc}") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=list(RSA_ALGORITHMS), issuer=self.issuer,
                                options={"require": ["exp", "iss"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        if not self._audience_matches(claims):
            raise Unauthorized("the token's aud (or client_id) is not in the authorizer's audience")
        return claims

    def _audience_matches(self, claims: dict) -> bool:
        if "aud" in claims:
            aud = claims["aud"]
            return any(a in self.audiences for a in (aud if isinstance(aud, list) else [aud]) if isinstance(a, str))
        client_id = claims.get("client_id")
        return isinstance(client_id, str) and client_id in self.audiences
