"""The WebSocket handshake: who may connect (speakers and listeners, a token in the query or the header, either
token type) and what is refused at the handshake, with its status (403: a session it may not join; 401: a bad
token) and the reason logged. The listener cap and anonymous listeners switched off: test_ws_template_parameters.py.
"""

from __future__ import annotations

import json
import time

import jwt
import pytest

from tests.e2e.conftest import LocalStackHandle
from tests.e2e.ws_helpers import (
    Sockets,
    get_session,
    heartbeat,
    items,
    new_session,
    refusal_reasons,
    refused,
    run,
    session_item,
    sub_of,
)


@pytest.fixture(scope="module")
def ended_session(http, stack):
    session = new_session(http, stack)
    assert http.delete(f"/sessions/{session['sessionId']}", headers=stack.auth()).status_code == 204
    return session


# ------------------------------------------------------------------ tokens for 401s

def _moto_signing_key():
    """The key moto's Cognito signs every token with: a token signed with it differs from a real one only
    in the claims we change, so an expired or foreign token is refused for exactly that reason."""
    from moto.utilities.utils import load_resource
    return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(load_resource("cognitoidp/resources/jwks-private.json")))


def _resigned(stack: LocalStackHandle, **changes) -> str:
    claims = {**jwt.decode(stack.token("alice"), options={"verify_signature": False}), **changes}
    return jwt.encode(claims, _moto_signing_key(), algorithm="RS256", headers={"kid": "dummy"})


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"


def _foreign_key_token(stack: LocalStackHandle) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(stack.token("alice"), options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy"})


BAD_TOKENS = {
    "missing": lambda stack: None,
    "garbage": lambda stack: "a.b.c",
    "tampered-signature": lambda stack: _tampered(stack.token("alice")),
    "signed-by-another-key": _foreign_key_token,
    "expired": lambda stack: _resigned(stack, iat=int(time.time()) - 7200, exp=int(time.time()) - 600),
    "other-app-client": lambda stack: _resigned(stack, aud="someone-elses-client"),
    "other-issuer": lambda stack: _resigned(stack, iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"),
    "alg-none": lambda stack: jwt.encode(jwt.decode(stack.token("alice"), options={"verify_signature": False}),
                                         None, algorithm="none"),
}


# --------------------------------------------------------------- handshake refusals


# (role, case); anyone may listen to anyone's session, speakers have no target language. No role at all is
# not refused: the session's owner is its speaker, anyone else a listener (test_published_clients.py).
REFUSALS = [
    *(("speaker", case) for case in ("missing-session", "malformed-session-id", "ended-session", "foreign-session")),
    *(("listener", case) for case in ("missing-session", "malformed-session-id", "ended-session",
                                      "unsupported-target-language")),
    ("any", "unknown-connect-action"), ("any", "unknown-role"),
]


@pytest.mark.parametrize(("role", "case"), REFUSALS, ids=[f"{role}-{case}" for role, case in REFUSALS])
@pytest.mark.local_only("reads the refusal reasons from the functions' log files")
def test_a_connection_to_a_session_it_may_not_join_is_refused_with_403(stack, http, ended_session, case, role):
    live = new_session(http, stack)["sessionId"]
    params = {"sessionId": live, "role": role, "token": stack.token("alice")}
    expected_reason = {"missing-session": "SESSION_NOT_FOUND", "malformed-session-id": "INVALID_SESSION_ID",
                       "ended-session": "SESSION_ENDED", "foreign-session": "NOT_SESSION_OWNER",
                       "unknown-connect-action": "UNKNOWN_CONNECT_ACTION", "unknown-role": "INVALID_ROLE",
                       "unsupported-target-language": "UNSUPPORTED_TARGET_LANGUAGE"}[case]
    if case == "missing-session":
        params["sessionId"] = "quiet-otter-999"
    elif case == "malformed-session-id":
        params["sessionId"] = "Not-A-Session"
    elif case == "ended-session":
        params["sessionId"] = ended_session["sessionId"]
    elif case == "foreign-session":
        params["token"] = stack.token("bob")
    elif case == "unknown-connect-action":
        params["action"] = "dance"
    elif case == "unknown-role":
        params["role"] = "admin"
    elif case == "unsupported-target-language":
        params["targetLanguage"] = "xx"

    before = len(refusal_reasons(stack))
    assert run(refused(stack, **params)) == 403
    assert refusal_reasons(stack)[before:] == [expected_reason]  # refused for this reason, logged, not sent
    assert get_session(http, stack, live)["listenerCount"] == 0


# Anonymous listeners are allowed on this stack: a listener without a token is the strict stack's case.
TOKEN_CASES = [(role, token) for role in ("speaker", "listener") for token in BAD_TOKENS
               if (role, token) != ("listener", "missing")]


@pytest.mark.parametrize(("role", "token"), TOKEN_CASES, ids=[f"{role}-{token}" for role, token in TOKEN_CASES])
@pytest.mark.local_only("reads the refusal reasons from the functions' log files")
def test_a_bad_token_is_refused_with_401(stack, http, role, token):
    session_id = new_session(http, stack)["sessionId"]
    before = len(refusal_reasons(stack))
    assert run(refused(stack, sessionId=session_id, role=role, token=BAD_TOKENS[token](stack))) == 401
    assert refusal_reasons(stack)[before:] == ["UNAUTHORIZED"]
    # The same refusal for the token in the Authorization header.
    bad = BAD_TOKENS[token](stack)
    if bad:
        assert run(refused(stack, {"Authorization": f"Bearer {bad}"}, sessionId=session_id, role=role)) == 401


# ------------------------------------------------------------------- who may connect


def test_speakers_and_listeners_connect_and_are_recorded(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            anonymous = await sockets.listener(session_id)
            bob = await sockets.listener(session_id, token=stack.token("bob", access=True), targetLanguage="de")
            by_header = await sockets.open({"Authorization": f"Bearer {stack.token('bob')}"},
                                           sessionId=session_id, role="listener")
            for ws in (speaker, anonymous, bob, by_header):
                assert (await heartbeat(ws))["type"] == "heartbeatAck"
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            records = {item["userId"]["S"]: item for item in items(stack, session_id, "CONN#")}
            assert len(items(stack, session_id, "CONN#")) == 4
            assert records[sub_of(stack, "alice")]["role"]["S"] == "speaker"
            assert records[""]["role"]["S"] == "listener"  # the anonymous one
            bobs = [i for i in items(stack, session_id, "CONN#") if i["userId"]["S"] == sub_of(stack, "bob")]
            assert sorted((i["role"]["S"], i["targetLanguage"]["S"]) for i in bobs) == [
                ("listener", ""), ("listener", "de")]
            assert session_item(stack, session_id)["speakerConnectionId"]["S"] == \
                records[sub_of(stack, "alice")]["connectionId"]["S"]

    run(scenario())


@pytest.mark.parametrize("access", [False, True], ids=["id-token", "access-token"])
def test_a_speaker_may_connect_with_either_token_type_in_the_query_or_the_header(stack, http, access):
    session_id = new_session(http, stack)["sessionId"]
    token = stack.token("alice", access=access)

    async def scenario():
        async with Sockets(stack) as sockets:
            by_query = await sockets.open(sessionId=session_id, role="speaker", token=token)
            assert (await heartbeat(by_query))["type"] == "heartbeatAck"
            by_header = await sockets.open({"Authorization": f"Bearer {token}"}, sessionId=session_id,
                                           role="speaker")
            assert (await heartbeat(by_header))["type"] == "heartbeatAck"

    run(scenario())
