import time

import jwt
import pytest

from session_core.platform.auth import InvalidToken, JwksUnavailable, TokenVerifier
from tests.support import tokens


@pytest.fixture(scope="module")
def keys():
    return tokens.KeyPair("key-1"), tokens.KeyPair("other-pool-key")


@pytest.fixture(scope="module")
def jwks_url(keys):
    good, _ = keys
    with tokens.serving_jwks([good.jwk()]) as url:
        yield url


@pytest.fixture
def verifier(jwks_url):
    return TokenVerifier(tokens.ISSUER, [tokens.CLIENT_ID], jwks_url=jwks_url)


@pytest.mark.parametrize("token_use", ["id", "access"])
def test_valid_id_and_access_tokens_are_accepted(verifier, keys, token_use):
    token = keys[0].sign(tokens.claims(token_use=token_use, sub="alice"))
    assert verifier.verify(token)["sub"] == "alice"
    assert verifier.verify(f"Bearer {token}")["sub"] == "alice"


def _forgeries(keys):
    good, foreign = keys
    c = tokens.claims
    return {
        "missing": None,
        "empty": "",
        "malformed": "not-a-jwt",
        "alg none": tokens.unsigned(c()),
        "hs256 with the public key": tokens.hs256_with_public_key(good, c()),
        "bad signature": tokens.tampered(good.sign(c())),
        "unknown kid": foreign.sign(c()),
        "expired": good.sign(c(lifetime=-60)),
        "nbf in the future": good.sign(c(nbf=tokens.claims()["iat"] + 600)),
        "wrong issuer": good.sign(c(issuer="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_OTHER")),
        "wrong audience": good.sign(c(client_id="someone-elses-client")),
        "wrong client_id": good.sign(c(token_use="access", client_id="someone-elses-client")),
        "access token judged on its aud": good.sign(c(token_use="access", client_id="someone-elses-client",
                                                      aud=tokens.CLIENT_ID)),
        "rs512": jwt.encode(c(), good.private, algorithm="RS512", headers={"kid": good.kid}),
        "list-valued aud": good.sign(c(aud=[tokens.CLIENT_ID, "someone-elses-client"])),
        "token_use refresh": good.sign(c(token_use="refresh")),
        "no token_use": good.sign({k: v for k, v in c().items() if k != "token_use"}),
        "no sub": good.sign({k: v for k, v in c().items() if k != "sub"}),
        "oversized": good.sign(c(padding="x" * 9000)),
    }


@pytest.mark.parametrize("case", list(_forgeries((tokens.KeyPair("a"), tokens.KeyPair("b")))))
def test_forged_or_foreign_tokens_are_refused(verifier, keys, case):
    with pytest.raises(InvalidToken):
        verifier.verify(_forgeries(keys)[case])


def test_unreachable_jwks_is_the_services_failure_not_a_refusal_nor_a_hang():
    # Nothing is wrong with the token: the caller must be told to retry (503 / a 5xx handshake), not 401.
    verifier = TokenVerifier(tokens.ISSUER, [tokens.CLIENT_ID], jwks_url="http://127.0.0.1:9/jwks.json",
                             jwks_timeout=0.5)
    with pytest.raises(JwksUnavailable) as raised:
        verifier.verify(tokens.KeyPair("k").sign(tokens.claims()))
    assert not isinstance(raised.value, InvalidToken)


@pytest.mark.parametrize("failure", tokens.JWKS_FAILURES)
def test_a_failing_jwks_endpoint_is_the_services_failure(failure):
    with tokens.failing_jwks(failure) as url:
        verifier = TokenVerifier(tokens.ISSUER, [tokens.CLIENT_ID], jwks_url=url, jwks_timeout=0.5)
        started = time.monotonic()
        with pytest.raises(JwksUnavailable):
            verifier.verify(tokens.KeyPair("k").sign(tokens.claims()))
        assert time.monotonic() - started < 3
