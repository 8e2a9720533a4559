"""JWT attacks on both APIs through the local stack.

Every forged, foreign, stale or malformed token must be refused the way API Gateway refuses it:
HTTP 401 with exactly {"message":"Unauthorized"} on every route, and a failed WebSocket handshake
(401) for speakers, and for listeners whenever a token is given.

Claim-level forgeries (expired, nbf, wrong iss/aud/client_id, token_use, oversize) are signed with
moto's own Cognito key (moto/cognitoidp/resources/jwks-private.json, the same key for every pool of
the emulator), so the server would accept their signature: they are refused for the claim alone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import boto3
import httpx
import jwt
import pytest
import websockets.sync.client as ws_client
from cryptography.hazmat.primitives import serialization
from websockets.exceptions import InvalidStatus

from tests.support.tokens import KeyPair, tampered, unsigned

from .conftest import new_session, suite, ws_url

SUITE = "security/jwt"
KNOWN = "security/jwt"
UNAUTHORIZED = {"message": "Unauthorized"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unverified(token: str) -> tuple[dict, dict]:
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def moto_private_key():
    """The RSA key moto signs every pool's tokens with (a fixed test key shipped with moto)."""
    from moto.utilities.utils import load_resource
    return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(load_resource("cognitoidp/resources/jwks-private.json")))


def hs256(secret: bytes, header: dict, claims: dict) -> str:
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.fixture(scope="module")
def other_pool_tokens(stack):
    """A second user pool + client + user in the stack's moto, signed in for real."""
    idp = boto3.client("cognito-idp", endpoint_url=stack["awsEndpointUrl"], region_name=stack["region"],
                       aws_access_key_id="test", aws_secret_access_key="test")
    pool = idp.create_user_pool(PoolName=f"intruders-{uuid.uuid4().hex[:6]}")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool, ClientName="intruder",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])["UserPoolClient"]["ClientId"]
    idp.admin_create_user(UserPoolId=pool, Username="mallory", TemporaryPassword="Temporary-Passw0rd")
    idp.admin_set_user_password(UserPoolId=pool, Username="mallory", Password="Mallory-Passw0rd!", Permanent=True)
    result = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": "mallory", "PASSWORD": "Mallory-Passw0rd!"})
    return result["AuthenticationResult"]


@pytest.fixture(scope="module")
def attacks(stack, other_pool_tokens) -> dict[str, str | None]:
    """name -> the Authorization header value (None: no header at all)."""
    real_id, real_access = stack.token("alice"), stack.token("alice", access=True)
    header, id_claims = _unverified(real_id)
    _, access_claims = _unverified(real_access)
    kid = header["kid"]
    now = int(time.time())

    jwks = httpx.get(stack["jwksUrl"], timeout=10).json()
    public_jwk = next(k for k in jwks["keys"] if k["kid"] == kid)
    public_pem = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(public_jwk)).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    moto_key = moto_private_key()

    def moto_signed(claims: dict, **headers) -> str:
        return jwt.encode(claims, moto_key, algorithm=headers.pop("alg", "RS256"), headers={"kid": kid, **headers})

    # The control: moto's key really is the key the server trusts (else the claim-level cases prove nothing).
    control = moto_signed({**id_claims, "iat": now, "exp": now + 600})
    assert httpx.get(f"{stack.url}/sessions/calm-river-427", headers={"Authorization": f"Bearer {control}"},
                     timeout=10).status_code == 404

    attacker = KeyPair("attacker-key")
    impostor = KeyPair(kid)  # our own key under the real kid
    fresh = {"iat": now, "exp": now + 600}
    cases: dict[str, str | None] = {
        "no-header": None,
        "empty": "",
        "bearer-only": "Bearer",
        "lowercase-scheme-junk": "bearer x.y.z",
        "three-junk-parts": "Bearer a.b.c",
        "not-a-jwt": "Bearer not-a-jwt",
        "two-parts": "Bearer " + ".".join(real_id.split(".")[:2]),
        "basic-auth": "Basic YWxpY2U6cGFzcw==",
        "header-not-json": "Bearer " + _b64(b"{not json") + "." + real_id.split(".")[1] + "." + real_id.split(".")[2],
        "alg-none": "Bearer " + unsigned({**id_claims, **fresh}),
        "alg-none-access": "Bearer " + unsigned({**access_claims, **fresh}),
        "alg-None-case": "Bearer " + unsigned({**id_claims, **fresh}).replace(
            _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode()), _b64(b'{"alg":"None","typ":"JWT"}')),
        "alg-none-real-signature": "Bearer " + _b64(json.dumps({"alg": "none", "kid": kid}).encode()) + "."
                                   + real_id.split(".")[1] + "." + real_id.split(".")[2],
        "hs256-public-pem": "Bearer " + hs256(public_pem, {"alg": "HS256", "typ": "JWT", "kid": kid},
                                              {**id_claims, **fresh}),
        "hs256-public-jwk-json": "Bearer " + hs256(json.dumps(public_jwk).encode(),
                                                   {"alg": "HS256", "typ": "JWT", "kid": kid}, {**id_claims, **fresh}),
        "hs256-modulus": "Bearer " + hs256(public_jwk["n"].encode(), {"alg": "HS256", "kid": kid},
                                           {**access_claims, **fresh}),
        "tampered-signature": "Bearer " + tampered(real_id),
        "tampered-signature-access": "Bearer " + tampered(real_access),
        "signature-stripped": "Bearer " + real_id.rsplit(".", 1)[0] + ".",
        "payload-swapped-sub": "Bearer " + real_id.split(".")[0] + "." + _b64(json.dumps(
            {**id_claims, "sub": "someone-else"}).encode()) + "." + real_id.split(".")[2],
        "unknown-kid-own-key": "Bearer " + attacker.sign({**id_claims, **fresh}),
        "real-kid-own-key": "Bearer " + impostor.sign({**id_claims, **fresh}),
        "no-kid-own-key": "Bearer " + jwt.encode({**id_claims, **fresh}, attacker.private, algorithm="RS256"),
        "kid-path-traversal": "Bearer " + attacker.sign({**id_claims, **fresh}, {"kid": "../../../etc/passwd"}),
        "jku-to-attacker-jwks": "Bearer " + attacker.sign({**id_claims, **fresh},
                                                         {"jku": "http://127.0.0.1:1/jwks.json"}),
        "embedded-jwk-header": "Bearer " + attacker.sign({**id_claims, **fresh}, {"jwk": attacker.jwk()}),
        "rs512-trusted-key": "Bearer " + moto_signed({**id_claims, **fresh}, alg="RS512"),
        "expired": "Bearer " + moto_signed({**id_claims, "iat": now - 7200, "exp": now - 60}),
        "expired-access": "Bearer " + moto_signed({**access_claims, "iat": now - 7200, "exp": now - 60}),
        "no-exp": "Bearer " + moto_signed({k: v for k, v in id_claims.items() if k != "exp"}),
        "nbf-future": "Bearer " + moto_signed({**id_claims, **fresh, "nbf": now + 300}),
        "wrong-issuer": "Bearer " + moto_signed({**id_claims, **fresh, "iss": "https://evil.example.com/pool"}),
        "issuer-other-pool-same-region": "Bearer " + moto_signed(
            {**id_claims, **fresh, "iss": id_claims["iss"].rsplit("/", 1)[0] + "/eu-west-1_NOTOURS"}),
        "issuer-trailing-junk": "Bearer " + moto_signed({**id_claims, **fresh, "iss": id_claims["iss"] + "x"}),
        "no-issuer": "Bearer " + moto_signed({k: v for k, v in {**id_claims, **fresh}.items() if k != "iss"}),
        "wrong-audience": "Bearer " + moto_signed({**id_claims, **fresh, "aud": "someone-elses-client"}),
        "wrong-client-id": "Bearer " + moto_signed({**access_claims, **fresh, "client_id": "someone-elses-client"}),
        "access-with-aud-not-client-id": "Bearer " + moto_signed(
            {**{k: v for k, v in access_claims.items() if k != "client_id"}, **fresh, "aud": id_claims["aud"]}),
        "token-use-refresh": "Bearer " + moto_signed({**id_claims, **fresh, "token_use": "refresh"}),
        "token-use-missing": "Bearer " + moto_signed(
            {k: v for k, v in {**id_claims, **fresh}.items() if k != "token_use"}),
        "token-use-ID-case": "Bearer " + moto_signed({**id_claims, **fresh, "token_use": "ID"}),
        "no-sub": "Bearer " + moto_signed({k: v for k, v in {**id_claims, **fresh}.items() if k != "sub"}),
        "other-pool-id-token": "Bearer " + other_pool_tokens["IdToken"],
        "other-pool-access-token": "Bearer " + other_pool_tokens["AccessToken"],
    }
    return cases


@pytest.fixture(scope="module")
def oversized(stack) -> str:
    """A token over 8 KB, otherwise valid: signed with the trusted key, right issuer and audience."""
    header, claims = _unverified(stack.token("alice"))
    now = int(time.time())
    token = jwt.encode({**claims, "iat": now, "exp": now + 600, "pad": "x" * 5_500}, moto_private_key(),
                       algorithm="RS256", headers={"kid": header["kid"]})
    assert 8 * 1024 < len(token) < 9 * 1024
    return token


def refused_http(r: httpx.Response) -> bool:
    try:
        body = r.json()
    except ValueError:
        return False
    return r.status_code == 401 and body == UNAUTHORIZED


@pytest.fixture(scope="module")
def victim(api, stack):
    return new_session(api, stack, "alice")


ROUTES = [("POST", "/sessions"), ("GET", "/sessions/{id}"), ("PATCH", "/sessions/{id}"),
          ("DELETE", "/sessions/{id}"), ("GET", "/sessions/quiet-otter-999")]


@pytest.mark.local_only("signs tokens with the embedded Cognito's own key")
def test_every_http_route_refuses_every_bad_token(api, stack, attacks, victim):
    with suite(SUITE) as check:
        for name, value in attacks.items():
            headers = {} if value is None else {"Authorization": value}
            for method, path in ROUTES:
                r = api.request(method, path.format(id=victim["sessionId"]), headers=headers,
                                json={"sourceLanguage": "en", "status": "ended"})
                check(refused_http(r), f"{name} {method} {path}: {r.status_code} {r.text[:120]}")
    # Nothing got through: the victim's session is untouched.
    assert api.get(f"/sessions/{victim['sessionId']}", headers=stack.auth()).json() == victim


def test_the_token_is_not_taken_from_the_query_string(api, stack, victim):
    with suite(SUITE) as check:
        r = api.get(f"/sessions/{victim['sessionId']}", params={"token": stack.token()})
        check(refused_http(r), f"query token on HTTP: {r.status_code}")


def _handshake(stack, **query) -> tuple[int, bytes]:
    """(status, body) of the handshake; 101 when it succeeded (the socket is closed again)."""
    try:
        with ws_client.connect(ws_url(stack, **query), open_timeout=15, max_size=None) as ws:
            ws.close()
            return 101, b""
    except InvalidStatus as refusal:
        return refusal.response.status_code, refusal.response.body or b""


def _refused_ws(status: int, body: bytes) -> bool:
    try:
        return status == 401 and json.loads(body) == UNAUTHORIZED
    except ValueError:
        return False


@pytest.mark.local_only("signs tokens with the embedded Cognito's own key")
def test_websocket_handshakes_refuse_every_bad_token(stack, attacks, victim):
    with suite(SUITE) as check:
        for name, value in attacks.items():
            token = None if value is None else value.removeprefix("Bearer").strip()
            status, body = _handshake(stack, sessionId=victim["sessionId"], role="speaker", token=token)
            check(_refused_ws(status, body), f"{name} ws speaker: {status} {body[:120]!r}")
            status, body = _handshake(stack, role="speaker", token=token)  # legacy creation, no session
            check(status in (401, 403) and status != 101, f"{name} ws legacy speaker: {status}")
            if token:  # anonymous listeners are allowed; a bad token is not
                status, body = _handshake(stack, sessionId=victim["sessionId"], role="listener", token=token)
                check(_refused_ws(status, body), f"{name} ws listener: {status} {body[:120]!r}")
            # The same token as an Authorization header on the upgrade request.
            if value:
                try:
                    with ws_client.connect(ws_url(stack, sessionId=victim["sessionId"], role="speaker"),
                                           additional_headers={"Authorization": value}, open_timeout=15):
                        status = 101
                except InvalidStatus as refusal:
                    status = refusal.response.status_code
                check(status == 401, f"{name} ws speaker via header: {status}")


def test_controls_the_real_tokens_are_accepted(api, stack, victim):
    """Without this, every refusal above could be for a wrong reason (a broken stack refuses everything)."""
    with suite(SUITE) as check:
        for access in (False, True):
            r = api.get(f"/sessions/{victim['sessionId']}", headers=stack.auth(access=access))
            check(r.status_code == 200, f"control GET access={access}: {r.status_code}")
            status, _ = _handshake(stack, sessionId=victim["sessionId"], role="listener",
                                   token=stack.token(access=access))
            check(status == 101, f"control listener access={access}: {status}")
        status, _ = _handshake(stack, sessionId=victim["sessionId"], role="speaker", token=stack.token())
        check(status == 101, f"control speaker: {status}")


def test_an_oversized_token_is_refused_without_echoing_it(api, stack, victim, oversized):
    with suite(KNOWN) as check:
        for method, path in ROUTES:
            r = api.request(method, path.format(id=victim["sessionId"]),
                            headers={"Authorization": f"Bearer {oversized}"}, json={"sourceLanguage": "en"})
            check(refused_http(r) and oversized[:40] not in r.text, f"oversized {method} {path}: {r.status_code}")
        try:
            status, body = _handshake(stack, sessionId=victim["sessionId"], role="speaker", token=oversized)
        except Exception as exc:  # noqa: BLE001 - a non-HTTP/1.1 answer
            status, body = 0, repr(exc).encode()
        # In the query it makes the URL longer than API Gateway's 4,096 characters: refused before the authorizer.
        url_too_long = status == 414 and json.loads(body or b"{}") == {"message": "Request-URI Too Long"}
        check((_refused_ws(status, body) or url_too_long) and oversized[:40].encode() not in body,
              f"oversized ws speaker: {status}")


def test_an_oversized_token_never_gets_through(api, stack, victim, oversized):
    """What holds today: whichever layer refuses it, an oversized token is never accepted."""
    with suite(SUITE) as check:
        for method, path in ROUTES:
            r = api.request(method, path.format(id=victim["sessionId"]),
                            headers={"Authorization": f"Bearer {oversized}"}, json={"sourceLanguage": "en"})
            check(r.status_code in (400, 401, 413, 431), f"oversized {method} {path}: {r.status_code}")
        try:
            status, _ = _handshake(stack, sessionId=victim["sessionId"], role="speaker", token=oversized)
        except Exception:  # noqa: BLE001 - HTTP/1.0 400 from aiohttp
            status = 400
        check(status in (400, 401, 414, 431), f"oversized ws speaker: {status}")
    assert api.get(f"/sessions/{victim['sessionId']}", headers=stack.auth()).json() == victim


def test_a_list_valued_audience_is_a_clean_401_on_websockets(stack, victim):
    header, claims = _unverified(stack.token("alice"))
    now = int(time.time())
    token = jwt.encode({**claims, "iat": now, "exp": now + 600, "aud": [claims["aud"], "another-client"]},
                       moto_private_key(), algorithm="RS256", headers={"kid": header["kid"]})
    with suite(KNOWN) as check:
        for role in ("speaker", "listener"):
            status, body = _handshake(stack, sessionId=victim["sessionId"], role=role, token=token)
            check(_refused_ws(status, body), f"audience-list ws {role}: {status} {body[:80]!r}")


def test_a_list_valued_audience_never_gets_through(api, stack, victim):
    header, claims = _unverified(stack.token("alice"))
    now = int(time.time())
    token = jwt.encode({**claims, "iat": now, "exp": now + 600, "aud": [claims["aud"], "another-client"]},
                       moto_private_key(), algorithm="RS256", headers={"kid": header["kid"]})
    with suite(SUITE) as check:
        for method, path in ROUTES:
            r = api.request(method, path.format(id=victim["sessionId"]), headers={"Authorization": f"Bearer {token}"},
                            json={"sourceLanguage": "en"})
            check(refused_http(r), f"audience-list {method} {path}: {r.status_code}")
        for role in ("speaker", "listener"):
            status, _ = _handshake(stack, sessionId=victim["sessionId"], role=role, token=token)
            check(status in (401, 500), f"audience-list ws {role}: {status}")
