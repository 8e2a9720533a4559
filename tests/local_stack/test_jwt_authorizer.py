"""The HTTP API's JWT authorizer: API Gateway's checks, plus Cognito's token rules (local_stack/jwt_authorizer.py).

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
        def do_GET(self):
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
    # Cognito's access tokens have no aud: their client_id names the app client.
    claims = verifier.verify(token(drop=("aud",), client_id="other-client", token_use="access"))
    assert claims["client_id"] == "other-client"


@pytest.mark.parametrize("bad", [
    pytest.param({"exp": int(time.time()) - 60}, id="expired"),
    pytest.param({"iss": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"}, id="wrong-issuer"),
    pytest.param({"iss": ISSUER + "/"}, id="issuer-trailing-slash"),
    pytest.param({"aud": "someone-else"}, id="wrong-audience"),
    pytest.param({"aud": "someone-else", "client_id": CLIENT}, id="id-token-judged-on-aud"),
    pytest.param({"aud": [CLIENT, "someone-else"]}, id="list-valued-aud"),
    pytest.param({"token_use": "access", "aud": CLIENT}, id="access-token-judged-on-client_id"),
    pytest.param({"token_use": "refresh"}, id="token_use-refresh"),
    pytest.param({"token_use": "ID"}, id="token_use-case"),
    pytest.param({"nbf": int(time.time()) + 600}, id="not-yet-valid"),
    pytest.param({"iat": int(time.time()) + 600}, id="issued-in-the-future"),
    pytest.param({"pad": "x" * 8192}, id="over-8-KB"),
])
def test_refused_claims(verifier, bad):
    with pytest.raises(Unauthorized):
        verifier.verify(token(**bad))


@pytest.mark.parametrize("claim", ["exp", "iss", "sub", "token_use", "aud"])
def test_refused_without_a_required_claim(verifier, claim):
    with pytest.raises(Unauthorized):
        verifier.verify(token(drop=(claim,)))


def test_refused_bad_signature_unknown_key_and_other_algorithms(verifier):
    with pytest.raises(Unauthorized, match="invalid token"):
        verifier.verify(token(key=OTHER_KEY))  # same kid, another key: the signature does not verify
    with pytest.raises(Unauthorized, match="no key"):
        verifier.verify(token(kid="unknown"))
    with pytest.raises(Unauthorized, match="not RS256"):
        verifier.verify(token(key="shared-secret-of-32-bytes-or-more!", algorithm="HS256"))
    with pytest.raises(Unauthorized, match="not RS256"):
        verifier.verify(token(algorithm="RS512"))
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
