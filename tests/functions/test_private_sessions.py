"""Who may join a session (its access and join key) and how many live sessions a user may hold, each
function invoked against moto. The same rules end to end, with timing: tests/e2e/security/test_private_sessions.py."""

import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from session_core.platform import settings as settings_module

from tests.functions.conftest import TABLE
from tests.support.lambdas import http_event, ws_event

KEY = re.compile(r"[A-Za-z0-9_-]{22,}")


@pytest.fixture(autouse=True)
def fresh_settings():
    settings_module.settings.cache_clear()
    yield
    settings_module.settings.cache_clear()


def a_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def create(invoke, sub, **body):
    return invoke("create_session", http_event("create_session", sub=sub, body={"sourceLanguage": "en", **body}))


def created(invoke, sub, **body) -> dict:
    status, _, session = create(invoke, sub, **body)
    assert status == 201, session
    return session


def get(invoke, session_id, sub):
    return invoke("get_session", http_event("get_session", session_id=session_id, sub=sub))


def delete(invoke, session_id, sub):
    return invoke("delete_session", http_event("delete_session", session_id=session_id, sub=sub))[0]


def join(invoke, session_id, *, user_id="", dialect="native", **query):
    """$connect of a listener the authorizer admitted: its status (non-2xx fails the handshake) and body."""
    who = {"sessionId": session_id, "role": "listener", "userId": user_id, "targetLanguage": "", "legacy": False,
           "dialect": dialect}
    event = ws_event("ws_connect", connection_id=f"c-{uuid.uuid4().hex[:10]}=", who=who,
                     query={"sessionId": session_id, "role": "listener", **query})
    result = invoke.raw("ws_connect", event)
    return result["statusCode"], result.get("body")


# --- access and keys --------------------------------------------------------------------------------

def test_a_session_is_a_link_session_by_default_with_an_unguessable_key(invoke):
    owner = a_user()
    first, second = created(invoke, owner), created(invoke, owner)
    assert first["access"] == "link" and KEY.fullmatch(first["joinKey"])
    assert len(first["joinKey"]) >= 22  # 128 bits or more of URL-safe base64
    assert first["joinKey"] != second["joinKey"]


def test_a_public_session_has_no_key(invoke):
    session = created(invoke, a_user(), access="public")
    assert session["access"] == "public" and "joinKey" not in session


@pytest.mark.parametrize("access", ["secret", "", 1, None, True, ["link"]])
def test_an_unknown_access_is_a_validation_error_that_echoes_nothing(invoke, access):
    status, _, body = create(invoke, a_user(), access=access)
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR"
    assert "access" in body["error"]["message"]
    if isinstance(access, str) and access:
        assert access not in body["error"]["message"]


def test_only_the_owner_reads_the_key(invoke):
    owner = a_user()
    session = created(invoke, owner)
    status, _, mine = get(invoke, session["sessionId"], owner)
    assert status == 200 and mine["joinKey"] == session["joinKey"]
    status, _, theirs = get(invoke, session["sessionId"], a_user())
    assert status == 200 and theirs["access"] == "link" and "joinKey" not in theirs
    assert session["joinKey"] not in str(theirs)


def test_the_owners_update_answer_keeps_the_key(invoke):
    owner = a_user()
    session = created(invoke, owner)
    status, _, body = invoke("update_session", http_event("update_session", session_id=session["sessionId"],
                                                          sub=owner, body={"status": "paused"}))
    assert status == 200 and body["joinKey"] == session["joinKey"]


def test_an_anonymous_listener_joins_a_link_session_with_its_key_only(invoke, emf):
    session = created(invoke, a_user())
    session_id, key = session["sessionId"], session["joinKey"]
    assert join(invoke, session_id)[0] == 403
    assert join(invoke, session_id, joinKey=key[:-1] + ("A" if key[-1] != "A" else "B"))[0] == 403
    assert join(invoke, session_id, joinKey="")[0] == 403
    assert join(invoke, session_id, joinKey="x" * 3000)[0] == 403
    assert emf.total("ConnectionRefused", reason="JOIN_KEY_MISSING") == 3  # no key, empty, not a key's shape
    assert emf.total("ConnectionRefused", reason="JOIN_KEY_WRONG") == 1
    assert join(invoke, session_id, joinKey=key)[0] == 200
    assert get(invoke, session_id, a_user())[2]["listenerCount"] == 1


def test_a_signed_in_listener_joins_by_the_id_alone(invoke):
    session = created(invoke, a_user())
    assert join(invoke, session["sessionId"], user_id=a_user())[0] == 200


def test_a_public_session_is_joined_by_its_id(invoke):
    session = created(invoke, a_user(), access="public")
    assert join(invoke, session["sessionId"])[0] == 200
    assert join(invoke, session["sessionId"], joinKey="anything")[0] == 200


def test_the_three_refusals_are_one_answer(invoke, emf):
    session = created(invoke, a_user())
    answers = {join(invoke, session["sessionId"]), join(invoke, session["sessionId"], joinKey="W" * 32),
               join(invoke, "absent-otter-123", joinKey=session["joinKey"])}
    assert answers == {(403, None)}
    assert emf.total("ConnectionRefused", reason="SESSION_NOT_FOUND") == 1


def test_sessions_created_over_the_old_protocol_are_public(invoke):
    owner = a_user()
    who = {"sessionId": "", "role": "speaker", "userId": owner, "targetLanguage": "", "legacy": True}
    _, _, reply = invoke("ws_create_session", ws_event("ws_create_session", connection_id=f"c-{uuid.uuid4().hex}=",
                                                       who=who, body={"action": "createSession",
                                                                      "sourceLanguage": "de"}))
    assert reply["type"] == "sessionCreated" and "joinKey" not in reply
    status, _, body = get(invoke, reply["sessionId"], owner)
    assert status == 200 and body["access"] == "public" and "joinKey" not in body
    assert join(invoke, reply["sessionId"])[0] == 200


def test_a_session_stored_before_access_existed_reads_and_joins_as_public(invoke):
    session = created(invoke, a_user())
    boto3.client("dynamodb").update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session['sessionId']}"},
                                                                "sk": {"S": "META"}},
                                         UpdateExpression="REMOVE #access, joinKey",
                                         ExpressionAttributeNames={"#access": "access"})
    assert get(invoke, session["sessionId"], session["speakerId"])[2]["access"] == "public"
    assert join(invoke, session["sessionId"])[0] == 200


# --- live sessions per user -------------------------------------------------------------------------

@pytest.fixture
def cap(setenv):
    setenv("MAX_LIVE_SESSIONS_PER_USER", "2")
    return 2


def test_the_next_create_over_the_cap_is_429_and_ending_one_frees_a_place(invoke, cap):
    owner = a_user()
    first, _ = created(invoke, owner), created(invoke, owner)
    status, _, body = create(invoke, owner)
    assert status == 429
    assert body["error"]["code"] == "SESSION_LIMIT_REACHED" and "2" in body["error"]["message"]
    assert set(body["error"]) == {"code", "message", "requestId"}
    assert created(invoke, a_user())  # another user is not held back
    assert delete(invoke, first["sessionId"], owner) == 204
    assert delete(invoke, first["sessionId"], owner) == 204  # a repeated end frees nothing twice
    created(invoke, owner)
    assert create(invoke, owner)[0] == 429


def test_ending_by_patch_frees_a_place(invoke, cap):
    owner = a_user()
    first, _ = created(invoke, owner), created(invoke, owner)
    status, _, _ = invoke("update_session", http_event("update_session", session_id=first["sessionId"], sub=owner,
                                                       body={"status": "ended"}))
    assert status == 200
    created(invoke, owner)
    assert create(invoke, owner)[0] == 429


def test_an_expired_session_holds_no_place(invoke, cap):
    owner = a_user()
    first, _ = created(invoke, owner), created(invoke, owner)
    past = str(int(time.time()) - 1)
    ddb = boto3.client("dynamodb")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{first['sessionId']}"}, "sk": {"S": "META"}},
                    UpdateExpression="SET expiresAt = :past", ExpressionAttributeValues={":past": {"N": past}})
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"USER#{owner}"}, "sk": {"S": "SESSIONS"}},
                    UpdateExpression="SET live.#id = :past", ExpressionAttributeNames={"#id": first["sessionId"]},
                    ExpressionAttributeValues={":past": {"N": past}})
    created(invoke, owner)
    assert create(invoke, owner)[0] == 429


def test_a_repeated_create_with_its_idempotency_key_takes_no_second_place(invoke, cap):
    owner = a_user()
    def again():
        return invoke("create_session", http_event("create_session", sub=owner, headers={"idempotency-key": "k-12345678"},
                                                   body={"sourceLanguage": "en"}))
    first, repeat = again(), again()
    assert first[0] == repeat[0] == 201 and first[2]["sessionId"] == repeat[2]["sessionId"]
    created(invoke, owner)
    assert create(invoke, owner)[0] == 429


def test_concurrent_creates_never_pass_the_cap(invoke, setenv):
    setenv("MAX_LIVE_SESSIONS_PER_USER", "3")
    owner = a_user()
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: create(invoke, owner)[0], range(8)))
    assert statuses == [201] * 3 + [429] * 5


def test_the_old_protocol_counts_against_the_cap_too(invoke, cap):
    owner = a_user()
    created(invoke, owner), created(invoke, owner)
    who = {"sessionId": "", "role": "speaker", "userId": owner, "targetLanguage": "", "legacy": True}
    _, _, reply = invoke("ws_create_session", ws_event("ws_create_session", connection_id=f"c-{uuid.uuid4().hex}=",
                                                       who=who, body={"action": "createSession",
                                                                      "sourceLanguage": "de"}))
    assert reply["type"] == "error" and reply["code"] == "SESSION_LIMIT_REACHED"


def test_the_teardown_finish_frees_the_place_again(invoke, cap):
    # The end's own release may fail after the session ended; the teardown's last step repeats it (idempotent).
    owner = a_user()
    first, _ = created(invoke, owner), created(invoke, owner)
    ddb = boto3.client("dynamodb")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{first['sessionId']}"}, "sk": {"S": "META"}},
                    UpdateExpression="SET #status = :ended, endedAt = :now", ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={":ended": {"S": "ended"}, ":now": {"N": str(int(time.time()))}})
    assert create(invoke, owner)[0] == 429  # ended behind the service's back: still counted
    invoke.raw("teardown_finish", {"sessionId": first["sessionId"], "startedAt": "2026-01-01T00:00:00Z"})
    created(invoke, owner)
