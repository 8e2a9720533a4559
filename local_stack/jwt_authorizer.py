"""The HTTP API's JWT authorizer: what API Gateway documents, and no more.

API Gateway's developer guide ("Control access to HTTP APIs with JWT authorizers", and "Troubleshooting
JWT authorizers"): it takes the token from the identity source, alone or after "Bearer "; decodes it; checks
its algorithm (RSA-based only: RS256, RS384, RS512) and its signature by the key of the issuer's JWKS that
the token's ``kid`` names; then ``iss`` equal to the configured issuer, ``aud`` matching one of the
configured audience, or ``client_id`` when the token has no ``aud`` (a token with both is judged on its
``aud``), ``exp`` after now, ``nbf`` and ``iat`` before now. An ``aud`` may be a list (RFC 7519): one of
its values must match.

It checks nothing else: not the token's size (only the request's header limits apply, limits.py), not
``sub``, not Cognito's ``token_use``, not which of ``aud`` or ``client_id`` a Cognito token of that use
carries. API Gateway lets such tokens through to the functions, so the emulator does too: the product
refuses them itself, in its functions, and a test that a token is refused holds on AWS as well.

It verifies tokens itself, with PyJWT, rather than with the product's verifier, so a bug in the
product's verifier cannot hide behind the emulator that tests it.
"""

from __future__ import annotations

import jwt

# "API Gateway supports only RSA-based algorithms."
ALGORITHMS = ("RS256", "RS384", "RS512")
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
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"algorithm {header.get('alg')!r} is not RSA-based")
        try:
            key = self._jwks.get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientError as exc:  # an unreachable JWKS included: API Gateway denies then too
            raise Unauthorized(f"no key for kid {header.get('kid')!r}: {exc}") from None
        try:
            claims = jwt.decode(token, key.key, algorithms=list(ALGORITHMS), issuer=self.issuer,
                                # API Gateway documents no check of sub or jti: PyJWT's are switched off.
                                options={"require": ["exp", "iss"], "verify_aud": False, "verify_sub": False,
                                         "verify_jti": False})
        except jwt.PyJWTError as exc:
            raise Unauthorized(f"invalid token: {exc}") from None
        audience_claim = "aud" if "aud" in claims else "client_id"
        audience = claims.get(audience_claim)
        if not any(isinstance(value, str) and value in self.audiences
                   for value in (audience if isinstance(audience, list) else [audience])):
            raise Unauthorized(f"the token's {audience_claim} is not in the authorizer's audience")
        return claims
