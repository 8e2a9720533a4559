"""The HTTP API's JWT authorizer (local_stack/jwt_authorizer.py): API Gateway's documented checks, and no more.

What API Gateway lets through and Cognito never issues (another RSA algorithm, a refresh token, no sub...) passes
here too: the product's functions refuse it (tests/functions/test_token_rules.py).

Tokens are signed with a key served as a JWKS over real HTTP, as moto serves a user pool's keys."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from local_stack.jwt_authorizer import JwtVerifier, Unauthorized
from tests.support.tokens import KeyPair, serving_jwks

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
CLIENT = "client123"
KID = "key-1"
SIGNING = KeyPair(KID)
SIGNING_KEY, OTHER_KEY = SIGNING.private, KeyPair("other").private


@pytest.fixture(scope="module")
def jwks_url():
    with serving_jwks([SIGNING.jwk()], "/eu-west-1_pool/.well-known/jwks.json") as url:
        yield url


@pytest.fixture
def verifier(jwks_url):
    return JwtVerifier(ISSUER, (CLIENT, "other-client"), jwks_url)


def token(key=SIGNING_KEY, kid=KID, algorithm="RS256", drop=(), **claims) -> str:
    now = int(time.time())
    body = {"sub": "user-1", "iss": ISSUER, "aud": CLIENT, "token_use": "id", "iat": now, "exp": now + 3600}
    body = {k: v for k, v in (body | claims).items() if k not in drop}
    return jwt.encode(body, key, algorithm=algorithm, headers={"kid": kid})


def test_an_id_token_of_the_app_client_passes_with_or_without_bearer(verifier):
    assert verifier.verify(token())["sub"] == "user-1"
    assert verifier.verify("Bearer " + token())["aud"] == CLIENT


def test_an_access_token_passes_on_its_client_id(verifier):
    # Cognito's access tokens have no aud: their client_id names the app client.
    claims = verifier.verify(token(drop=("aud",), client_id="other-client", token_use="access"))
    assert claims["client_id"] == "other-client"


# API Gateway checks the signature (any RSA algorithm), kid, iss, aud or client_id, exp, nbf and iat: nothing
# about Cognito's token types, the subject or the size. These pass the authorizer; the functions refuse them.
@pytest.mark.parametrize("given", [
    pytest.param({"algorithm": "RS512"}, id="RS512"),
    pytest.param({"algorithm": "RS384"}, id="RS384"),
    pytest.param({"token_use": "refresh"}, id="token_use-refresh"),
    pytest.param({"token_use": "ID"}, id="token_use-case"),
    pytest.param({"drop": ("token_use",)}, id="no-token_use"),
    pytest.param({"drop": ("sub",)}, id="no-sub"),
    pytest.param({"sub": 42}, id="sub-not-a-string"),
    pytest.param({"pad": "x" * 8192}, id="over-8-KB"),
    pytest.param({"token_use": "access"}, id="access-token-with-aud-not-client_id"),
    pytest.param({"client_id": "someone-else"}, id="aud-judged-not-client_id"),
    pytest.param({"aud": ["someone-else", CLIENT]}, id="list-valued-aud-with-one-of-the-audience"),
])
def test_what_api_gateway_does_not_check_passes(verifier, given):
    given = dict(given)
    assert verifier.verify(token(algorithm=given.pop("algorithm", "RS256"), drop=given.pop("drop", ()), **given))


@pytest.mark.parametrize("bad", [
    pytest.param({"exp": int(time.time()) - 60}, id="expired"),
    pytest.param({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"}, id="wrong-issuer"),
    pytest.param({"iss": ISSUER + "/"}, id="issuer-trailing-slash"),
    pytest.param({"aud": "someone-else"}, id="wrong-audience"),
    pytest.param({"aud": "someone-else", "client_id": CLIENT}, id="aud-judged-when-both-are-there"),
    pytest.param({"aud": ["someone-else", "another"]}, id="list-valued-aud-without-the-audience"),
    pytest.param({"aud": None}, id="aud-null"),
    # Times in the future are taken when the test runs, not when it is collected: a long run would reach them.
    pytest.param(lambda: {"nbf": int(time.time()) + 600}, id="not-yet-valid"),
    pytest.param(lambda: {"iat": int(time.time()) + 600}, id="issued-in-the-future"),
])
def test_refused_claims(verifier, bad):
    with pytest.raises(Unauthorized):
        verifier.verify(token(**(bad() if callable(bad) else bad)))


def test_an_access_token_of_another_client_is_refused(verifier):
    with pytest.raises(Unauthorized, match="client_id"):
        verifier.verify(token(drop=("aud",), client_id="someone-else", token_use="access"))


@pytest.mark.parametrize("claims", [("exp",), ("iss",), ("aud",)], ids=["exp", "iss", "aud-and-client_id"])
def test_refused_without_a_required_claim(verifier, claims):
    with pytest.raises(Unauthorized):
        verifier.verify(token(drop=claims))


def test_refused_bad_signature_unknown_key_and_algorithms_not_rsa(verifier):
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(token(key=OTHER_KEY))  # same kid, another key: the signature does not verify
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(token(key=OTHER_KEY, algorithm="RS512"))
    with pytest.raises(Unauthorized, match="no key"):
        verifier.verify(token(kid="unknown"))
    with pytest.raises(Unauthorized, match="not RSA-based"):
        verifier.verify(token(key="shared-secret-of-32-bytes-or-more!", algorithm="HS256"))
    with pytest.raises(Unauthorized, match="not RSA-based"):
        verifier.verify(token(key=ec.generate_private_key(ec.SECP256R1()), algorithm="ES256"))
    with pytest.raises(Unauthorized, match="not RSA-based"):
        verifier.verify(token(key=None, algorithm="none"))
    parts = token().split(".")
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(".".join([parts[0], parts[1][:-4] + "AAAA", parts[2]]))  # a claim changed after signing


@pytest.mark.parametrize("missing", [None, "", "Bearer ", "not-a-jwt"])
def test_refused_missing_or_malformed(verifier, missing):
    with pytest.raises(Unauthorized):
        verifier.verify(missing)


def test_an_issuer_without_local_keys_refuses_every_token():
    with pytest.raises(Unauthorized, match="not available locally"):
        JwtVerifier(ISSUER, (CLIENT,), None).verify(token())
