"""The HTTP API's JWT authorizer refuses what API Gateway refuses, and accepts what it accepts.

Tokens are signed with a key served as a JWKS over real HTTP, as moto serves a user pool's keys."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local_stack.jwt_authorizer import JwtVerifier, Unauthorized

ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_pool"
CLIENT = "client123"
KID = "key-1"
SIGNING_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def jwks_url():
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(SIGNING_KEY.public_key()))
    body = json.dumps({"keys": [jwk | {"kid": KID, "alg": "RS256", "use": "sig"}]}).encode()

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/eu-west-1_pool/.well-known/jwks.json"
    server.shutdown()


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
    # Cognito's access tokens have no aud: API Gateway then checks client_id.
    claims = verifier.verify(token(drop=("aud",), client_id=CLIENT, token_use="access"))
    assert claims["client_id"] == CLIENT


def test_token_use_is_not_checked_as_api_gateway_does_not(verifier):
    assert verifier.verify(token(drop=("token_use",)))["sub"] == "user-1"
    assert verifier.verify(token(token_use="anything"))["sub"] == "user-1"


def test_any_audience_entry_and_any_aud_of_a_list_match(verifier):
    assert verifier.verify(token(aud="other-client"))["sub"] == "user-1"
    assert verifier.verify(token(aud=["someone-else", CLIENT]))["sub"] == "user-1"


@pytest.mark.parametrize("bad", [
    pytest.param({"exp": int(time.time()) - 60}, id="expired"),
    pytest.param({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"}, id="wrong-issuer"),
    pytest.param({"aud": "someone-else"}, id="wrong-audience"),
    # With aud present API Gateway evaluates aud and ignores client_id.
    pytest.param({"aud": "someone-else", "client_id": CLIENT}, id="aud-wins-over-client_id"),
    pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
    pytest.param({"iat": int(time.time()) + 600}, id="issued-in-the-future"),
])
def test_refused_claims(verifier, bad):
    with pytest.raises(Unauthorized):
        verifier.verify(token(**bad))


def test_refused_without_audience_claims_or_exp(verifier):
    with pytest.raises(Unauthorized, match="audience"):
        verifier.verify(token(drop=("aud",)))
    with pytest.raises(Unauthorized, match="exp"):
        verifier.verify(token(drop=("exp",)))


def test_refused_bad_signature_unknown_key_and_non_rsa_algorithm(verifier):
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(token(key=OTHER_KEY))  # same kid, another key: the signature does not verify
    with pytest.raises(Unauthorized, match="no key"):
        verifier.verify(token(kid="unknown"))
    with pytest.raises(Unauthorized, match="not RSA"):
        verifier.verify(token(key="shared-secret-of-32-bytes-or-more!", algorithm="HS256"))
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
