"""Cognito JWTs: the product's token rules, and the verifier of the WebSocket authorizer and of the HTTP
functions under the SAM CLI.

API Gateway's HTTP API JWT authorizer checks a token's signature (any RSA algorithm), kid, iss, its aud
(client_id when it has no aud), exp, nbf and iat, and no more. The product accepts only what Cognito
issues to its app client, so it adds its own rules (`cognito_token_claims`): RS256, at most 8 KB, a
`sub`, `token_use` "id" or "access", and the claim that names the app client for that use (an ID token's
`aud`, an access token's `client_id`, which API Gateway judged only if the token has no `aud`) as one
string. The HTTP functions apply these rules to the token API Gateway verified; the verifier below applies
them after its own signature and claim checks. They need only the standard library: PyJWT and
cryptography (~150 ms of cold start) load when a verifier is first made.
"""

from __future__ import annotations

import base64
import binascii
import json
from functools import cache

from .. import errors
from .observability import logger
from .settings import settings

ALGORITHM = "RS256"  # what Cognito signs with
# Tokens over this size are refused before any parsing (Cognito's are far smaller).
MAX_TOKEN_BYTES = 8 * 1024
# Cognito's token_use -> the claim that names the app client the token was issued to.
AUDIENCE_CLAIM = {"id": "aud", "access": "client_id"}
# Clock skew tolerated on exp/nbf/iat.
LEEWAY_SECONDS = 5


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or meant for someone else.

    The message is for logs only (it never holds the token); callers answer a bare 401.
    """


def bearer_token(value: str | None) -> str:
    """The token of an Authorization value, with or without "Bearer "."""
    value = (value or "").strip()
    return value[7:].strip() if value[:7].lower() == "bearer " else value


def cognito_token_claims(token: str | None) -> dict:
    """The claims of a token that keeps the product's rules, else InvalidToken.

    The signature is not checked here: the caller already verified it (API Gateway, or TokenVerifier).
    """
    return _checked(token)[2]


def _checked(value: str | None) -> tuple[str, dict, dict]:
    """The bare token, its JOSE header and its claims, once the product's rules hold."""
    token = bearer_token(value)
    if not token:
        raise InvalidToken("missing token")
    if len(token) > MAX_TOKEN_BYTES:
        raise InvalidToken("token over 8 KB")
    header, claims = _unverified(token)
    if header.get("alg") != ALGORITHM:
        raise InvalidToken(f"algorithm is not {ALGORITHM}")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise InvalidToken("no sub")
    token_use = claims.get("token_use")
    audience_claim = AUDIENCE_CLAIM.get(token_use) if isinstance(token_use, str) else None
    if audience_claim is None:
        raise InvalidToken("token_use is neither id nor access")
    if not isinstance(claims.get(audience_claim), str):
        raise InvalidToken(f"an {token_use} token without a single {audience_claim}")
    if token_use == "access" and "aud" in claims:
        # API Gateway judged its aud, not its client_id; Cognito's access tokens have no aud.
        raise InvalidToken("an access token with an aud")
    return token, header, claims


def _unverified(token: str) -> tuple[dict, dict]:
    """The JOSE header and the claims: base64url JSON objects."""
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed token: not three parts")
    try:
        header, claims = (json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))) for part in parts[:2])
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise InvalidToken(f"malformed token: {type(exc).__name__}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token: not JSON objects")
    return header, claims


class JwksUnavailable(errors.ServiceUnavailable):
    """The pool's keys could not be fetched (refused, timed out, an HTTP error, not JSON): nothing is wrong
    with the token, so it is the service's failure (503; a 5xx handshake), which clients retry, never a 401,
    which they do not."""

    @classmethod
    def logged(cls, exc: Exception) -> JwksUnavailable:
        logger.warning("jwks unavailable", extra={"errorType": type(exc).__name__})
        return cls()


class TokenVerifier:
    """Verifies Cognito tokens for one issuer and a set of app client IDs: the product's rules above, the RS256
    signature by the key of the pool's JWKS that the token's kid names, iss, exp/nbf/iat, and the token's app
    client (aud or client_id, by token_use) in the audience.

    The JWKS is fetched once and cached for the life of the execution
    environment (PyJWKClient, lifespan below); an unknown ``kid`` triggers one
    refetch, so rotated keys are picked up without a cold start.
    """

    def __init__(self, issuer: str, audiences: list[str] | tuple[str, ...], jwks_url: str | None = None,
                 jwks_timeout: float = 3.0) -> None:
        import jwt

        self.issuer = issuer.rstrip("/")
        self.audiences = frozenset(a for a in audiences if a)
        self.jwks_url = jwks_url or f"{self.issuer}/.well-known/jwks.json"
        self._jwks = jwt.PyJWKClient(self.jwks_url, cache_keys=True, lifespan=3600, timeout=jwks_timeout)

    def verify(self, token: str | None) -> dict:
        import jwt

        # The product's rules first: they cost no key fetch, and bound what PyJWT parses.
        token, header, claims = _checked(token)
        try:
            key = self._jwks.get_signing_key(header.get("kid") or "")
        except jwt.PyJWKClientConnectionError as exc:
            raise JwksUnavailable.logged(exc) from None
        except jwt.PyJWKClientError as exc:
            raise InvalidToken(f"unknown signing key: {exc}") from None
        except ValueError as exc:  # a 200 that is not JSON (PyJWT lets the decoder's error through)
            raise JwksUnavailable.logged(exc) from None
        try:
            jwt.decode(token, key.key, algorithms=[ALGORITHM], issuer=self.issuer, leeway=LEEWAY_SECONDS,
                       options={"require": ["exp", "iss"], "verify_aud": False})
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"invalid token: {exc}") from None
        if claims[AUDIENCE_CLAIM[claims["token_use"]]] not in self.audiences:
            raise InvalidToken("token issued for another client")
        return claims


@cache
def configured_verifier() -> TokenVerifier:
    """The verifier for this stack's pool (JWT_ISSUER, JWT_AUDIENCE, optional JWKS_URL)."""
    s = settings()
    return TokenVerifier(s.jwt_issuer, s.jwt_audiences, jwks_url=s.jwks_url)
