"""The product's token rules, enforced by every HTTP function on the token API Gateway's JWT authorizer let
through: API Gateway accepts any RSA algorithm, any size, no sub, any token_use, an access token judged on its
aud, a list of audiences. The function refuses those with API Gateway's own 401, and logs why (never the token).
"""

from __future__ import annotations

import json
import time

import pytest

from tests.support.lambdas import http_event, verified_token

ALICE = "alice-sub"
ISSUER = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_EXAMPLE"
CLIENT = "exampleclientid1234567890"
UNAUTHORIZED = {"message": "Unauthorized"}




def id_claims(**changes) -> dict:
    now = int(time.time())
    claims = {"sub": ALICE, "iss": ISSUER, "aud": CLIENT, "token_use": "id", "iat": now, "exp": now + 3600}
    return {k: v for k, v in (claims | changes).items() if v is not None}


def access_claims(**changes) -> dict:
    return id_claims(**({"aud": None, "client_id": CLIENT, "token_use": "access",
                         "scope": "aws.cognito.signin.user.admin"} | changes))


def gateway_string(value) -> str:
    """How API Gateway hands a claim to the function: a string; a list as "[a b]"."""
    return f"[{' '.join(map(str, value))}]" if isinstance(value, list) else str(value)


def through_the_gateway(name: str, claims: dict, *, header: dict | None = None, token: str | None = None,
                        session_id: str | None = None, body=None) -> dict:
    """The event API Gateway sends once its authorizer accepted the token: its claims, and the token itself."""
    event = http_event(name, session_id=session_id, body=body)
    event["requestContext"]["authorizer"]["jwt"]["claims"] = {k: gateway_string(v) for k, v in claims.items()}
    if token is None:
        token = verified_token(claims, header)
    if token:
        event["headers"]["authorization"] = f"Bearer {token}"
    else:
        del event["headers"]["authorization"]
    return event


@pytest.fixture(scope="module")
def session(invoke):
    status, _, body = invoke("create_session", through_the_gateway("create_session", id_claims(),
                                                                  body={"sourceLanguage": "en"}))
    assert status == 201
    return body


@pytest.mark.parametrize("claims", [id_claims(), access_claims()], ids=["id-token", "access-token"])
def test_cognito_tokens_pass(invoke, claims):
    status, _, created = invoke("create_session", through_the_gateway("create_session", claims,
                                                                     body={"sourceLanguage": "en"}))
    assert (status, created["speakerId"]) == (201, ALICE)
    session_id = created["sessionId"]
    assert invoke("get_session", through_the_gateway("get_session", claims, session_id=session_id))[0] == 200
    status, _, body = invoke("update_session", through_the_gateway(
        "update_session", claims, session_id=session_id, body={"status": "paused"}))
    assert (status, body["status"]) == (200, "paused")
    assert invoke("delete_session", through_the_gateway("delete_session", claims, session_id=session_id))[0] == 204


# What API Gateway's authorizer lets through and Cognito never issues to the app client; the reason logged.
REFUSED = {
    "rs512": ({"header": {"kid": "k", "alg": "RS512"}}, "algorithm is not RS256"),
    "rs384": ({"header": {"kid": "k", "alg": "RS384"}}, "algorithm is not RS256"),
    "no-alg": ({"header": {"kid": "k"}}, "algorithm is not RS256"),
    "over-8-KB": ({"claims": id_claims(pad="x" * 6200)}, "token over 8 KB"),
    "no-sub": ({"claims": id_claims(sub=None)}, "no sub"),
    "empty-sub": ({"claims": id_claims(sub="")}, "no sub"),
    "token_use-refresh": ({"claims": id_claims(token_use="refresh")}, "token_use is neither id nor access"),
    "token_use-ID": ({"claims": id_claims(token_use="ID")}, "token_use is neither id nor access"),
    "no-token_use": ({"claims": id_claims(token_use=None)}, "token_use is neither id nor access"),
    "id-token-judged-on-client_id": ({"claims": id_claims(aud=None, client_id=CLIENT)},
                                     "an id token without a single aud"),
    "list-valued-aud": ({"claims": id_claims(aud=[CLIENT, "another-client"])}, "an id token without a single aud"),
    "access-token-with-aud-not-client_id": ({"claims": access_claims(aud=CLIENT, client_id=None)},
                                            "an access token without a single client_id"),
    "access-token-judged-on-aud": ({"claims": access_claims(aud=CLIENT, client_id="someone-elses-client")},
                                   "an access token with an aud"),
    "no-authorization-header": ({"token": ""}, "missing token"),
    "not-a-jwt": ({"token": "not-a-jwt"}, "malformed token"),
    "header-not-json": ({"token": "e30x.e30.c2ln"}, "malformed token"),
    "another-token-than-the-claims": ({"token": verified_token(id_claims(sub="mallory"))},
                                      "the token is not the one API Gateway verified"),
}


@pytest.mark.parametrize("case", list(REFUSED))
@pytest.mark.parametrize("name", ["get_session", "create_session", "update_session", "delete_session"])
def test_tokens_cognito_never_issues_are_refused_before_the_domain_call(invoke, session, log_lines, case, name):
    given, reason = REFUSED[case]
    event = through_the_gateway(
        name, given.get("claims", id_claims()), header=given.get("header"), token=given.get("token"),
        session_id=None if name == "create_session" else session["sessionId"],
        body={"sourceLanguage": "en"} if name == "create_session" else {"status": "ended"})
    status, _, body = invoke(name, event)
    assert (status, body) == (401, UNAUTHORIZED)
    refusals = [line for line in log_lines() if line["message"] == "token refused"]
    assert len(refusals) == 1 and refusals[0]["reason"].startswith(reason)
    token = event["headers"].get("authorization", "").removeprefix("Bearer ")
    logged = json.dumps(log_lines())
    assert not token or all(part not in logged for part in token.split(".") if len(part) > 8)
    # Nothing happened: the session is as it was.
    assert invoke("get_session", through_the_gateway("get_session", id_claims(),
                                                     session_id=session["sessionId"]))[2]["status"] == "active"
