"""Each WebSocket function invoked with its sample event against moto (table,
Kinesis, Cognito) and a stand-in Management API."""

import base64
import json
import threading
import time
import uuid

import boto3
import pytest

from session_core.platform import settings as settings_module
from tests.support.lambdas import http_event, sample_event, ws_event


@pytest.fixture(autouse=True)
def fresh_settings():
    # Tests change environment variables; settings are cached per environment.
    from session_core.platform import auth
    settings_module.settings.cache_clear()
    auth.configured_verifier.cache_clear()
    yield
    settings_module.settings.cache_clear()
    auth.configured_verifier.cache_clear()


@pytest.fixture
def users(cognito):
    def sub(user):
        from jwt import decode
        return decode(cognito["tokens"][user]["IdToken"], options={"verify_signature": False})["sub"]
    return {name: {"sub": sub(name), **cognito["tokens"][name]} for name in ("alice", "bob")}


# Each session's join key, as its link carries it to anonymous listeners (connect() puts it in the query).
JOIN_KEYS: dict[str, str] = {}


@pytest.fixture
def session(invoke, users):
    """A fresh active session owned by alice."""
    status, _, body = invoke("create_session", http_event("create_session", sub=users["alice"]["sub"],
                                                          body={"sourceLanguage": "en"}))
    assert status == 201
    JOIN_KEYS[body["sessionId"]] = body["joinKey"]
    return body


def read_session(invoke, session_id):
    return invoke("get_session", http_event("get_session", session_id=session_id))[2]


def authorize(invoke, **query):
    return invoke.raw("ws_authorizer", ws_event("ws_authorizer", query=query))


def speaker(session, users, user="alice"):
    return {"sessionId": session["sessionId"], "role": "speaker", "userId": users[user]["sub"],
            "targetLanguage": "", "legacy": False}


def listener(session):
    return {"sessionId": session["sessionId"], "role": "listener", "userId": "", "targetLanguage": "es",
            "legacy": False}


def new_connection():
    return f"conn-{uuid.uuid4().hex[:10]}="


def kinesis_records(session_id):
    kinesis = boto3.client("kinesis")
    shard = kinesis.describe_stream(StreamName="audio-test")["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="audio-test", ShardId=shard,
                                          ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    records = []
    while iterator:
        page = kinesis.get_records(ShardIterator=iterator, Limit=1000)
        records += [json.loads(r["Data"]) for r in page["Records"]]
        if not page["Records"]:
            break
        iterator = page["NextShardIterator"]
    return [r for r in records if r["sessionId"] == session_id]


def audio(seq, payload=b"\x01\x02\x03\x04"):
    return {"action": "sendAudio", "seq": seq, "data": base64.b64encode(payload).decode()}


def send(invoke, who, body, connection_id="speaker-conn="):
    status, _, reply = invoke("ws_send_audio", ws_event("ws_send_audio", connection_id=connection_id, who=who,
                                                        body=body))
    assert status == 200
    return reply


# --- sample events ---------------------------------------------------------

@pytest.mark.parametrize("name", ["ws_authorizer", "ws_connect", "ws_disconnect", "ws_send_audio", "ws_heartbeat",
                                  "ws_session_control", "ws_create_session", "ws_default", "status_broadcast"])
def test_every_sample_event_is_handled(invoke, name):
    # The samples name a session that may not exist: each function must answer, not crash.
    if name == "ws_authorizer":
        with pytest.raises(Exception, match="^Unauthorized$"):
            invoke.raw(name, sample_event(name))  # the sample token is a placeholder
        return
    result = invoke.raw(name, sample_event(name))
    if name == "status_broadcast":  # a stream consumer answers the records that failed
        assert result == {"batchItemFailures": []}
        return
    assert result is None or result["statusCode"] in (200, 403, 404, 409)


# --- authorizer -------------------------------------------------------------

def test_speaker_owning_the_session_is_admitted(invoke, session, users):
    for token in (users["alice"]["IdToken"], users["alice"]["AccessToken"]):
        policy = authorize(invoke, sessionId=session["sessionId"], role="speaker", token=token)
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        assert policy["context"] == {"sessionId": session["sessionId"], "role": "speaker",
                                     "userId": users["alice"]["sub"], "targetLanguage": "", "legacy": False,
                                     "dialect": "native", "delivery": ""}


def test_without_a_role_the_owner_is_the_speaker_and_anyone_else_a_listener(invoke, session, users):
    # The published clients name no role (Req 5.4): the authorizer reads the session's owner.
    def who(**query):
        policy = authorize(invoke, sessionId=session["sessionId"], **query)
        assert policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"
        return policy["context"]["role"], policy["context"]["userId"], policy["context"]["dialect"]

    assert who(token=users["alice"]["IdToken"]) == ("speaker", users["alice"]["sub"], "hybrid")
    assert who(token=users["bob"]["IdToken"], targetLanguage="es") == ("listener", users["bob"]["sub"], "hybrid")
    assert who(targetLanguage="es") == ("listener", "", "hybrid")
    assert who(role="listener", token=users["alice"]["IdToken"]) == ("listener", users["alice"]["sub"], "native")
    with pytest.raises(Exception, match="^Unauthorized$"):
        who(token="forged")


def test_without_a_role_a_missing_session_makes_a_listener_that_connect_refuses(invoke, users):
    policy = authorize(invoke, sessionId="absent-otter-123", token=users["alice"]["IdToken"])
    assert policy["context"]["role"] == "listener"


def test_token_in_the_authorization_header_is_accepted(invoke, session, users):
    event = ws_event("ws_authorizer", query={"sessionId": session["sessionId"], "role": "speaker"})
    event["headers"]["Authorization"] = f"Bearer {users['alice']['IdToken']}"
    assert invoke.raw("ws_authorizer", event)["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def handshake(invoke, **query):
    """What API Gateway answers a WebSocket handshake: the authorizer (raising Unauthorized: 401, Deny:
    403), then $connect with the context it returned (its status; non-2xx fails the handshake)."""
    event = ws_event("ws_authorizer", query=query)
    try:
        policy = invoke.raw("ws_authorizer", event)
    except Exception as exc:  # noqa: BLE001 - by API Gateway's contract the 401 is a bare Exception("Unauthorized")
        assert str(exc) == "Unauthorized"
        return 401
    if policy["policyDocument"]["Statement"][0]["Effect"] != "Allow":
        return 403
    return connect(invoke, policy["context"], event["requestContext"]["connectionId"] + new_connection())


def test_speaker_of_someone_elses_session_is_refused_at_connect(invoke, session, users, emf):
    policy = authorize(invoke, sessionId=session["sessionId"], role="speaker", token=users["bob"]["IdToken"])
    assert policy["context"]["userId"] == users["bob"]["sub"]  # the authorizer does not read the session
    assert handshake(invoke, sessionId=session["sessionId"], role="speaker", token=users["bob"]["IdToken"]) == 403
    assert emf.total("ConnectionRefused", reason="NOT_SESSION_OWNER") == 1
    assert read_session(invoke, session["sessionId"]).get("speakerConnectionId") is None


@pytest.mark.parametrize("token", [None, "", "garbage", "eyJhbGciOiJub25lIn0.e30."])
def test_speaker_without_a_valid_token_is_unauthorized(invoke, session, token):
    query = {"sessionId": session["sessionId"], "role": "speaker"} | ({"token": token} if token is not None else {})
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorize(invoke, **query)


def test_listeners_may_be_anonymous_or_signed_in(invoke, session, users):
    anonymous = authorize(invoke, sessionId=session["sessionId"], role="listener", targetLanguage="fr")
    assert anonymous["context"]["userId"] == "" and anonymous["context"]["targetLanguage"] == "fr"
    named = authorize(invoke, sessionId=session["sessionId"], role="listener", token=users["bob"]["IdToken"])
    assert named["context"]["userId"] == users["bob"]["sub"]
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorize(invoke, sessionId=session["sessionId"], role="listener", token="forged")


def test_anonymous_listeners_can_be_switched_off(invoke, session, setenv):
    setenv("ALLOW_ANONYMOUS_LISTENERS", "false")
    with pytest.raises(Exception, match="^Unauthorized$"):
        authorize(invoke, sessionId=session["sessionId"], role="listener")


@pytest.mark.parametrize(("query", "reason"), [
    ({"sessionId": "not a session id", "role": "listener"}, "INVALID_SESSION_ID"),
    ({"role": "listener"}, "INVALID_SESSION_ID"),
    ({"sessionId": "SESSION", "role": "admin"}, "INVALID_ROLE"),
    ({"sessionId": "SESSION", "role": "listener", "targetLanguage": "xx"}, "UNSUPPORTED_TARGET_LANGUAGE"),
    ({"sessionId": "SESSION", "role": "listener", "delivery": "carrier-pigeon"}, "UNSUPPORTED_DELIVERY"),
    ({"sessionId": "SESSION", "action": "dance"}, "UNKNOWN_CONNECT_ACTION"),
    ({"action": "createSession", "sessionId": "SESSION", "token": "x"}, "SESSION_ID_WITH_CREATE"),
])
def test_what_needs_no_session_read_is_denied_by_the_authorizer(invoke, session, query, reason, emf):
    query = {k: (session["sessionId"] if v == "SESSION" else v) for k, v in query.items()}
    assert authorize(invoke, **query)["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert emf.total("ConnectionRefused", reason=reason) == 1


@pytest.mark.parametrize(("case", "reason"), [("missing", "SESSION_NOT_FOUND"), ("ended", "SESSION_ENDED")])
@pytest.mark.parametrize("role", ["listener", "speaker"])
def test_missing_and_ended_sessions_refuse_everyone_at_connect(invoke, session, users, emf, case, role, reason):
    session_id = "quiet-otter-999" if case == "missing" else session["sessionId"]
    if case == "ended":
        invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                            sub=users["alice"]["sub"]))
    token = {"token": users["alice"]["IdToken"]} if role == "speaker" else {}
    emf.clear()
    assert allowed(authorize(invoke, sessionId=session_id, role=role, **token))  # no read: $connect decides
    assert handshake(invoke, sessionId=session_id, role=role, **token) == 403
    assert emf.total("ConnectionRefused", reason=reason) == 1
    if case == "ended":
        assert read_session(invoke, session_id)["listenerCount"] == 0


def test_the_authorizer_makes_no_aws_call(invoke, session, users, monkeypatch):
    import botocore.client
    calls = []
    real = botocore.client.BaseClient._make_api_call

    def counted(client, operation, params):
        calls.append(operation)
        return real(client, operation, params)
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counted)
    for query in ({"role": "listener"}, {"role": "speaker", "token": users["alice"]["IdToken"]},
                  {"role": "speaker", "token": users["bob"]["IdToken"]}):
        authorize(invoke, sessionId=session["sessionId"], **query)
    assert calls == []


def allowed(policy):
    return policy["policyDocument"]["Statement"][0]["Effect"] == "Allow"


def test_legacy_speaker_without_session_is_admitted_only_while_enabled(invoke, users, setenv):
    policy = authorize(invoke, role="speaker", token=users["alice"]["IdToken"])
    assert policy["context"]["legacy"] is True and policy["context"]["sessionId"] == ""
    setenv("LEGACY_WEBSOCKET_SESSION_CREATION", "disabled")
    policy = authorize(invoke, role="speaker", token=users["alice"]["IdToken"])
    assert policy["policyDocument"]["Statement"][0]["Effect"] == "Deny"


# --- connect / disconnect ---------------------------------------------------

def connect(invoke, who, connection_id):
    query = {"sessionId": who["sessionId"], "role": who["role"], "joinKey": JOIN_KEYS.get(who["sessionId"], "")}
    return invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection_id, who=who,
                                             query=query))["statusCode"]


def disconnect(invoke, who, connection_id):
    return invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=connection_id, who=who))["statusCode"]


def test_listener_count_follows_joins_and_leaves_and_respects_the_cap(invoke, session, users):
    ids = [new_connection() for _ in range(4)]
    assert [connect(invoke, listener(session), c) for c in ids] == [200, 200, 200, 403]  # cap is 3
    assert read_session(invoke, session["sessionId"])["listenerCount"] == 3
    assert disconnect(invoke, listener(session), ids[0]) == 200
    assert disconnect(invoke, listener(session), ids[0]) == 200  # a repeated $disconnect counts once
    assert disconnect(invoke, listener(session), ids[3]) == 200  # never joined: nothing to remove
    after = read_session(invoke, session["sessionId"])
    assert after["listenerCount"] == 2 and after["status"] == "active"  # a disconnect keeps the session


def test_listener_cannot_join_an_ended_session(invoke, session, users):
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                        sub=users["alice"]["sub"]))
    assert connect(invoke, listener(session), new_connection()) == 403
    assert read_session(invoke, session["sessionId"])["listenerCount"] == 0


def test_a_second_speaker_connection_replaces_the_first(invoke, session, users, management_api):
    first, second = new_connection(), new_connection()
    assert connect(invoke, speaker(session, users), first) == 200
    assert connect(invoke, speaker(session, users), second) == 200
    assert management_api.posts[first][-1]["code"] == "SPEAKER_REPLACED"
    assert first in management_api.closed
    # The old socket's $disconnect must not unseat the new one.
    assert disconnect(invoke, speaker(session, users), first) == 200
    table = boto3.client("dynamodb")
    item = table.get_item(TableName="sessions-test", Key={"pk": {"S": f"SESSION#{session['sessionId']}"},
                                                          "sk": {"S": "META"}})["Item"]
    assert item["speakerConnectionId"]["S"] == second


# --- audio ------------------------------------------------------------------

def test_active_audio_is_forwarded_in_order_with_its_metadata(invoke, session, users):
    who = speaker(session, users)
    for seq in range(5):
        assert send(invoke, who, audio(seq, bytes([seq]) * 10)) is None
    records = kinesis_records(session["sessionId"])
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4]
    assert base64.b64decode(records[3]["audio"]) == bytes([3]) * 10
    assert records[0]["sourceLanguage"] == "en" and records[0]["qualityTier"] == "standard"
    assert records[0]["receivedAt"] <= records[0]["forwardedAt"]


@pytest.mark.parametrize(("message", "code"), [
    ({"action": "sendAudio", "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": "7", "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": 1.5, "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": True, "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": -1, "data": "AAAA"}, "INVALID_SEQ"),
    ({"action": "sendAudio", "seq": 1, "data": "not base64!"}, "INVALID_AUDIO"),
    ({"action": "sendAudio", "seq": 1, "data": "AAA"}, "INVALID_AUDIO"),
    ({"action": "sendAudio", "seq": 1}, "INVALID_AUDIO"),
    ({"action": "sendAudio", "seq": 1, "data": base64.b64encode(b"x" * 4097).decode()}, "AUDIO_TOO_LARGE"),
    ({"action": "sendAudio", "seq": 1, "data": "A" * 100_000}, "AUDIO_TOO_LARGE"),
])
def test_bad_audio_is_refused_and_nothing_is_forwarded(invoke, session, users, message, code):
    reply = send(invoke, speaker(session, users), message)
    assert reply["type"] == "error" and reply["code"] == code and reply["requestId"].startswith("req-")
    assert kinesis_records(session["sessionId"]) == []


def test_audio_of_exactly_the_limit_is_accepted(invoke, session, users):
    assert send(invoke, speaker(session, users), audio(1, b"x" * 4096)) is None
    assert len(kinesis_records(session["sessionId"])) == 1


def test_non_json_frames_to_send_audio_are_refused(invoke, session, users):
    status, _, reply = invoke("ws_send_audio", ws_event("ws_send_audio", who=speaker(session, users),
                                                        raw_body="{oops"))
    assert reply["code"] == "INVALID_MESSAGE"


def test_listeners_cannot_send_audio_or_control(invoke, session):
    assert send(invoke, listener(session), audio(1))["code"] == "SPEAKER_ONLY"
    for action in ("pause", "resume"):
        _, _, reply = invoke("ws_session_control", ws_event("ws_session_control", who=listener(session),
                                                            route=action, body={"action": action}))
        assert reply["code"] == "SPEAKER_ONLY"
    assert kinesis_records(session["sessionId"]) == []
    assert read_session(invoke, session["sessionId"])["status"] == "active"


def test_ended_session_refuses_audio(invoke, session, users):
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                        sub=users["alice"]["sub"]))
    assert send(invoke, speaker(session, users), audio(1))["code"] == "SESSION_ENDED"
    assert kinesis_records(session["sessionId"]) == []


def control(invoke, who, action):
    _, _, reply = invoke("ws_session_control", ws_event("ws_session_control", who=who, route=action,
                                                        body={"action": action}))
    return reply


def test_paused_audio_is_held_then_forwarded_before_new_audio(invoke, session, users):
    who = speaker(session, users)
    send(invoke, who, audio(0))
    assert control(invoke, who, "pause")["status"] == "paused"
    for seq in (1, 2, 3):
        assert send(invoke, who, audio(seq)) is None
    assert [r["seq"] for r in kinesis_records(session["sessionId"])] == [0]
    assert control(invoke, who, "resume")["status"] == "active"
    send(invoke, who, audio(4))
    assert [r["seq"] for r in kinesis_records(session["sessionId"])] == [0, 1, 2, 3, 4]


def test_resume_over_http_forwards_the_buffer_before_the_next_chunk(invoke, session, users):
    who = speaker(session, users)
    control(invoke, who, "pause")
    send(invoke, who, audio(1))
    invoke("update_session", http_event("update_session", session_id=session["sessionId"],
                                        body={"status": "active"}, sub=users["alice"]["sub"]))
    assert kinesis_records(session["sessionId"]) == []
    send(invoke, who, audio(2))
    assert [r["seq"] for r in kinesis_records(session["sessionId"])] == [1, 2]


def test_audio_older_than_the_pause_window_is_dropped(invoke, session, users, monkeypatch):
    who = speaker(session, users)
    control(invoke, who, "pause")
    clock = {"now": time.time()}
    monkeypatch.setattr(time, "time", lambda: clock["now"])
    send(invoke, who, audio(1))            # will be 40 s old at resume
    clock["now"] += 15
    send(invoke, who, audio(2))            # 25 s old at resume
    clock["now"] += 25
    control(invoke, who, "resume")
    assert [r["seq"] for r in kinesis_records(session["sessionId"])] == [2]
    leftovers = boto3.client("dynamodb").query(
        TableName="sessions-test", KeyConditionExpression="pk = :pk AND begins_with(sk, :a)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session['sessionId']}"}, ":a": {"S": "AUDIO#"}})
    assert leftovers["Count"] == 0


def test_pause_and_resume_of_an_ended_session_are_refused(invoke, session, users):
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                        sub=users["alice"]["sub"]))
    assert control(invoke, speaker(session, users), "resume")["code"] == "SESSION_ENDED"


def test_heartbeat_is_acknowledged(invoke, session):
    _, _, reply = invoke("ws_heartbeat", ws_event("ws_heartbeat", who=listener(session)))
    assert reply["type"] == "heartbeatAck" and abs(reply["serverTime"] - time.time() * 1000) < 60_000


# --- $default -----------------------------------------------------------------

@pytest.mark.parametrize(("raw", "code"), [
    ('{"action": "shout"}', "UNKNOWN_ACTION"),
    ("not json", "INVALID_MESSAGE"),
    ("[1, 2]", "INVALID_MESSAGE"),
    ('{"no": "action"}', "INVALID_MESSAGE"),
])
def test_default_route_explains_the_problem(invoke, session, raw, code):
    _, _, reply = invoke("ws_default", ws_event("ws_default", who=listener(session), raw_body=raw))
    assert reply["type"] == "error" and reply["code"] == code


# --- legacy createSession -----------------------------------------------------

def legacy(users, user="alice"):
    return {"sessionId": "", "role": "speaker", "userId": users[user]["sub"], "targetLanguage": "", "legacy": True}


def create_legacy(invoke, who, connection_id, **body):
    _, _, reply = invoke("ws_create_session", ws_event(
        "ws_create_session", connection_id=connection_id, who=who,
        body={"action": "createSession", "sourceLanguage": "de", **body}))
    return reply


def test_legacy_creation_creates_a_session_tied_to_the_socket(invoke, users):
    connection = new_connection()
    reply = create_legacy(invoke, legacy(users), connection, qualityTier="premium")
    assert reply["type"] == "sessionCreated" and reply["connectionId"] == connection
    assert reply["sourceLanguage"] == "de" and reply["qualityTier"] == "premium"
    session = read_session(invoke, reply["sessionId"])
    assert session["status"] == "active" and session["speakerId"] == users["alice"]["sub"]
    # The same socket streams audio into it...
    assert send(invoke, legacy(users), audio(1), connection_id=connection) is None
    assert [r["seq"] for r in kinesis_records(reply["sessionId"])] == [1]
    # ...cannot create a second one...
    assert create_legacy(invoke, legacy(users), connection)["code"] == "ALREADY_IN_SESSION"
    # ...and its session ends with it.
    assert disconnect(invoke, legacy(users), connection) == 200
    assert read_session(invoke, reply["sessionId"])["status"] == "ended"


def test_legacy_creation_validates_like_http(invoke, users):
    reply = create_legacy(invoke, legacy(users), new_connection(), sourceLanguage="xx")
    assert reply["code"] == "VALIDATION_ERROR"


def test_legacy_creation_needs_a_legacy_connection(invoke, session, users):
    reply = create_legacy(invoke, speaker(session, users), new_connection())
    assert reply["code"] == "ALREADY_IN_SESSION"


def test_legacy_creation_can_be_switched_off(invoke, users, setenv):
    setenv("LEGACY_WEBSOCKET_SESSION_CREATION", "disabled")
    assert create_legacy(invoke, legacy(users), new_connection())["code"] == "LEGACY_CREATION_DISABLED"


def test_audio_on_a_legacy_connection_without_session_is_refused(invoke, users):
    assert send(invoke, legacy(users), audio(1), connection_id=new_connection())["code"] == "SESSION_NOT_FOUND"


# --- the old clients' vocabulary (session_core.api.legacy) ----------------------------------------

OLD_CREATE = {"action": "createSession", "sourceLanguage": "fr", "qualityTier": "premium", "partialResults": True,
              "minStability": 0.85, "maxBufferTimeout": 5.0}
SESSION_CREATED_KEYS = {"type", "sessionId", "sourceLanguage", "qualityTier", "partialResultsEnabled",
                        "minStabilityThreshold", "maxBufferTimeout", "connectionId", "timestamp"}


def old_create(invoke, who, connection_id, **changes):
    _, _, reply = invoke("ws_create_session", ws_event("ws_create_session", connection_id=connection_id, who=who,
                                                       body={**OLD_CREATE, **changes}))
    return reply


def audio_chunk(index, session_id, payload=b"\x01\x02\x03\x04", **changes):
    return {"action": "audioChunk", "sessionId": session_id, "audioData": base64.b64encode(payload).decode(),
            "chunkIndex": index, **changes}


def send_old(invoke, who, body, connection_id="speaker-conn="):
    status, _, reply = invoke("ws_send_audio", ws_event("ws_send_audio", connection_id=connection_id, who=who,
                                                        route="audioChunk", body=body))
    assert status == 200
    return reply


def old_control(invoke, who, action, connection_id="speaker-conn=", **fields):
    _, _, reply = invoke("ws_session_control", ws_event("ws_session_control", connection_id=connection_id, who=who,
                                                        route=action, body={"action": action, **fields}))
    return reply




def test_an_old_create_session_is_answered_in_the_old_format_with_its_settings(invoke, users):
    connection = new_connection()
    before = int(time.time() * 1000)
    reply = old_create(invoke, legacy(users), connection, partialResults="false", minStability=0.7,
                       maxBufferTimeout=10)
    assert set(reply) == SESSION_CREATED_KEYS, reply
    assert reply["type"] == "sessionCreated" and reply["connectionId"] == connection
    assert (reply["sourceLanguage"], reply["qualityTier"]) == ("fr", "premium")
    assert (reply["partialResultsEnabled"], reply["minStabilityThreshold"], reply["maxBufferTimeout"]) == (
        False, 0.7, 10.0)
    assert before <= reply["timestamp"] <= int(time.time() * 1000)
    session = read_session(invoke, reply["sessionId"])
    assert (session["partialResultsEnabled"], session["minStabilityThreshold"], session["maxBufferTimeout"]) == (
        False, 0.7, 10.0)
    assert session["speakerId"] == users["alice"]["sub"] and session["status"] == "active"


@pytest.mark.parametrize(("given", "stored"), [(True, True), ("true", True), (False, False), ("false", False)])
def test_partial_results_may_be_a_boolean_or_the_words_true_and_false(invoke, users, given, stored):
    reply = old_create(invoke, legacy(users), new_connection(), partialResults=given)
    assert reply["partialResultsEnabled"] is stored
    assert read_session(invoke, reply["sessionId"])["partialResultsEnabled"] is stored


def test_an_old_create_session_without_the_settings_gets_the_defaults(invoke, users):
    reply = create_legacy(invoke, legacy(users), new_connection())
    assert (reply["partialResultsEnabled"], reply["minStabilityThreshold"], reply["maxBufferTimeout"]) == (
        True, 0.85, 5.0)


@pytest.mark.parametrize(("field", "value"), [
    ("minStability", 0.69), ("minStability", 0.951), ("minStability", "0.85"), ("minStability", None),
    ("maxBufferTimeout", 1.99), ("maxBufferTimeout", 10.01), ("maxBufferTimeout", True),
    ("partialResults", "yes"), ("partialResults", 1), ("partialResults", "TRUE"),
    ("sourceLanguage", "xx"), ("qualityTier", "gold"),
])
def test_an_old_create_session_out_of_range_is_a_validation_error_and_creates_nothing(invoke, users, field, value):
    connection = new_connection()
    reply = old_create(invoke, legacy(users), connection, **{field: value})
    assert reply["type"] == "error" and reply["code"] == "VALIDATION_ERROR" and field in reply["message"]
    assert str(value) not in reply["message"].replace(field, "")  # the value is not echoed
    # The connection still has no session.
    assert send_old(invoke, legacy(users), audio_chunk(0, "any-session-123"), connection)["code"] == \
        "SESSION_NOT_FOUND"


def test_unknown_fields_of_old_messages_are_ignored_and_logged_once(invoke, users, log_lines):
    connection = new_connection()
    reply = old_create(invoke, legacy(users), connection, clientVersion="2.3.1", deviceId="abc")
    assert reply["type"] == "sessionCreated"
    session_id = reply["sessionId"]
    for index in range(3):
        assert send_old(invoke, legacy(users), audio_chunk(index, session_id, timestamp=123), connection) is None
    assert [r["seq"] for r in kinesis_records(session_id)] == [0, 1, 2]
    ignored = [(line["action"], line["ignoredFields"]) for line in log_lines()
               if line["message"] == "legacy message fields ignored"]
    assert ignored == [("createSession", ["clientVersion", "deviceId"]), ("audioChunk", ["timestamp"])]


def test_the_http_create_stays_strict_about_the_old_names(invoke, users):
    status, _, body = invoke("create_session", http_event("create_session", sub=users["alice"]["sub"],
                                                          body={"sourceLanguage": "en", "partialResults": True}))
    assert status == 400 and body["error"]["code"] == "VALIDATION_ERROR" and "partialResults" in body["error"]["message"]


def test_an_old_client_streams_pauses_and_resumes_like_a_new_one(invoke, users):
    connection = new_connection()
    who = legacy(users)
    session_id = old_create(invoke, who, connection, minStability=0.9, maxBufferTimeout=3.5)["sessionId"]
    assert send_old(invoke, who, audio_chunk(0, session_id), connection) is None
    paused = old_control(invoke, who, "pauseBroadcast", connection)
    assert paused == {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 0,
                      "listenersByLanguage": {}, "speakerConnected": True}
    for index in (1, 2):
        assert send_old(invoke, who, audio_chunk(index, session_id), connection) is None
    assert [r["seq"] for r in kinesis_records(session_id)] == [0]  # held while paused
    assert old_control(invoke, who, "resumeBroadcast", connection, sessionId=session_id)["status"] == "active"
    assert send_old(invoke, who, audio_chunk(3, session_id), connection) is None
    records = kinesis_records(session_id)
    assert [r["seq"] for r in records] == [0, 1, 2, 3]
    for record in records:
        assert (record["partialResultsEnabled"], record["minStabilityThreshold"], record["maxBufferTimeout"],
                record["sourceLanguage"], record["qualityTier"]) == (True, 0.9, 3.5, "fr", "premium")


@pytest.mark.parametrize(("changes", "code", "named"), [
    ({"chunkIndex": -1}, "INVALID_SEQ", "chunkIndex"),
    ({"chunkIndex": "3"}, "INVALID_SEQ", "chunkIndex"),
    ({"chunkIndex": None}, "INVALID_SEQ", "chunkIndex"),
    ({"audioData": "not base64!"}, "INVALID_AUDIO", "audioData"),
    ({"audioData": ""}, "INVALID_AUDIO", "audioData"),
    ({"audioData": base64.b64encode(b"x" * 4097).decode()}, "AUDIO_TOO_LARGE", "larger"),
    ({"sessionId": "other-session-123"}, "SESSION_MISMATCH", "sessionId"),
    ({"sessionId": None}, "SESSION_MISMATCH", "sessionId"),
])
def test_a_bad_audio_chunk_is_refused_with_the_send_audio_codes(invoke, session, users, changes, code, named):
    reply = send_old(invoke, speaker(session, users), audio_chunk(0, session["sessionId"], **changes))
    assert reply["type"] == "error" and reply["code"] == code and named in reply["message"], reply
    assert kinesis_records(session["sessionId"]) == []


def test_an_audio_chunk_without_a_session_id_is_refused(invoke, session, users):
    body = audio_chunk(0, session["sessionId"])
    del body["sessionId"]
    assert send_old(invoke, speaker(session, users), body)["code"] == "SESSION_MISMATCH"
    assert kinesis_records(session["sessionId"]) == []


def test_old_messages_follow_the_rules_of_the_new_ones(invoke, session, users):
    assert old_create(invoke, listener(session), new_connection())["code"] == "SPEAKER_ONLY"
    assert send_old(invoke, listener(session), audio_chunk(0, session["sessionId"]))["code"] == "SPEAKER_ONLY"
    assert old_control(invoke, listener(session), "pauseBroadcast")["code"] == "SPEAKER_ONLY"
    assert old_control(invoke, speaker(session, users), "pauseBroadcast",
                       sessionId="other-session-123")["code"] == "SESSION_MISMATCH"
    assert read_session(invoke, session["sessionId"])["status"] == "active"
    assert old_control(invoke, legacy(users), "resumeBroadcast", new_connection())["code"] == "SESSION_NOT_FOUND"
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                        sub=users["alice"]["sub"]))
    assert old_control(invoke, speaker(session, users), "resumeBroadcast")["code"] == "SESSION_ENDED"
    assert send_old(invoke, speaker(session, users), audio_chunk(0, session["sessionId"]))["code"] == "SESSION_ENDED"
    assert kinesis_records(session["sessionId"]) == []


def test_the_old_vocabulary_can_be_switched_off(invoke, session, users, setenv):
    setenv("LEGACY_WEBSOCKET_SESSION_CREATION", "disabled")
    who = speaker(session, users)
    replies = [old_create(invoke, legacy(users), new_connection()),
               send_old(invoke, who, audio_chunk(0, session["sessionId"])),
               old_control(invoke, who, "pauseBroadcast"), old_control(invoke, who, "resumeBroadcast")]
    assert [r["code"] for r in replies] == ["LEGACY_CREATION_DISABLED"] * 4
    assert "sendAudio" in replies[1]["message"] and "POST /sessions" in replies[0]["message"]
    assert kinesis_records(session["sessionId"]) == []
    assert read_session(invoke, session["sessionId"])["status"] == "active"
    # The new vocabulary is untouched.
    assert send(invoke, who, audio(0)) is None and control(invoke, who, "pause")["status"] == "paused"


# --- status broadcast -------------------------------------------------------------

def _status_event(session: dict) -> dict:
    event = sample_event("status_broadcast")
    record = event["Records"][0]["dynamodb"]
    for image in (record["NewImage"], record["OldImage"]):
        image["sessionId"]["S"] = session["sessionId"]
        image["pk"]["S"] = f"SESSION#{session['sessionId']}"
    return event


def test_status_changes_reach_every_socket_and_gone_ones_are_dropped(invoke, session, users, management_api,
                                                                     monkeypatch):
    from session_core.usecases import broadcast
    monkeypatch.setattr(broadcast, "CONNECTING_SECONDS", -1)  # every connection is older than that
    management_api.reset()
    ids = [new_connection() for _ in range(3)]
    for c in ids:
        assert connect(invoke, listener(session), c) == 200
    management_api.gone.add(ids[0])
    invoke.raw("status_broadcast", _status_event(session))
    expected = {"type": "status", "sessionId": session["sessionId"], "status": "paused", "listenerCount": 2,
                "listenersByLanguage": {}, "speakerConnected": False}
    assert management_api.posts[ids[1]] == [expected] and management_api.posts[ids[2]] == [expected]
    assert read_session(invoke, session["sessionId"])["listenerCount"] == 2  # the gone socket left


def test_a_connection_still_connecting_is_kept_though_it_answers_410(invoke, session, management_api):
    # AWS answers 410 until $connect has returned; the join's own write can reach the broadcast before.
    management_api.reset()
    connection_id = new_connection()
    assert connect(invoke, listener(session), connection_id) == 200
    management_api.gone.add(connection_id)
    before = read_session(invoke, session["sessionId"])["listenerCount"]
    invoke.raw("status_broadcast", _status_event(session))
    assert read_session(invoke, session["sessionId"])["listenerCount"] == before
    from session_core.usecases.broadcast import broadcast
    assert broadcast(session["sessionId"], {"type": "status"}).connecting >= 1


def test_unchanged_and_ended_sessions_are_not_broadcast(invoke, management_api):
    from session_core.usecases.broadcast import changed_sessions
    record = sample_event("status_broadcast")["Records"][0]
    same = json.loads(json.dumps(record))
    same["dynamodb"]["NewImage"]["status"]["S"] = "active"
    ended = json.loads(json.dumps(record))
    ended["dynamodb"]["NewImage"]["status"]["S"] = "ended"
    connection = json.loads(json.dumps(record))
    connection["dynamodb"]["NewImage"]["sk"]["S"] = "CONN#x"
    # Another item with sk META (not a session: no sessionId), which once failed the whole batch.
    foreign = {"eventName": "MODIFY", "dynamodb": {"Keys": {"pk": {"S": "OTHER#1"}, "sk": {"S": "META"}},
                                                  "NewImage": {"pk": {"S": "OTHER#1"}, "sk": {"S": "META"},
                                                               "status": {"S": "paused"}}}}
    assert changed_sessions([same, ended, connection, foreign]) == {}
    assert list(changed_sessions([record])) == ["golden-eagle-427"]


def test_a_failing_socket_does_not_hold_back_the_others(invoke, session, management_api):
    management_api.reset()
    ids = [new_connection() for _ in range(2)]
    for c in ids:
        assert connect(invoke, listener(session), c) == 200
    management_api.failing[ids[0]] = 10  # outlasts botocore's retries
    from session_core.usecases.broadcast import broadcast
    delivery = broadcast(session["sessionId"], {"type": "status", "status": "paused"})
    assert (delivery.sent, delivery.gone) == (1, 0)
    assert management_api.posts[ids[1]] == [{"type": "status", "status": "paused"}]
    assert read_session(invoke, session["sessionId"])["listenerCount"] == 2  # a failure is not a leave


def test_send_audio_decides_pause_or_forward_on_a_strongly_consistent_read(invoke, session, users):
    """An eventually consistent read right after a pause or resume may return the status before it, and the
    chunk would take the wrong branch: every read of the session sendAudio decides on is strongly consistent."""
    from session_core.platform import aws

    reads = []

    def record(params, **_):
        if params.get("Key", {}).get("pk", {}).get("S") == f"SESSION#{session['sessionId']}":
            reads.append(params.get("ConsistentRead", False))

    events = aws.client("dynamodb").meta.events
    events.register("provide-client-params.dynamodb.GetItem", record)
    try:
        who = speaker(session, users)
        send(invoke, who, audio(0))
        control(invoke, who, "pause")
        send(invoke, who, audio(1))
        control(invoke, who, "resume")
        send(invoke, who, audio(2))
        control(invoke, who, "pause")
        send(invoke, who, audio(3))
    finally:
        events.unregister("provide-client-params.dynamodb.GetItem", record)
    assert len(reads) >= 4 and all(reads), reads


# --- the published clients' dialects (session_core.api.dialects) ---------------------------------

def hybrid(who: dict) -> dict:
    return {**who, "dialect": "hybrid"}


def old(who: dict) -> dict:
    return {**who, "dialect": "old"}


def aged(event: dict, seconds: float) -> dict:
    event["requestContext"]["connectedAt"] = int((time.time() - seconds) * 1000)
    return event


@pytest.mark.parametrize(("dialect", "told"), [
    ("native", []),
    ("hybrid", ["connectionRefreshRequired"]),
    ("old", ["connectionRefreshRequired"]),
])
def test_a_heartbeat_past_the_refresh_age_asks_the_published_clients_to_refresh(invoke, session, management_api,
                                                                              dialect, told):
    connection = new_connection()
    who = {**listener(session), "dialect": dialect}
    young = ws_event("ws_heartbeat", connection_id=connection, who=who)
    assert invoke("ws_heartbeat", aged(young, 60))[2]["type"] == "heartbeatAck"
    assert management_api.posts[connection] == []  # nothing before the refresh age (100 minutes)
    old_enough = aged(ws_event("ws_heartbeat", connection_id=connection, who=who), 101 * 60)
    assert invoke("ws_heartbeat", old_enough)[2]["type"] == "heartbeatAck"
    posted = management_api.posts[connection]
    assert [m["type"] for m in posted] == told
    for message in posted:  # what the old clients' refresh handler reads, and the hybrid client's refreshBy
        assert message["sessionId"] == session["sessionId"] and message["role"] == "listener"
        assert message["targetLanguage"] == "es" and message["refreshBy"] > time.time() * 1000


def test_old_clients_are_also_warned_from_105_minutes(invoke, session, management_api):
    connection = new_connection()
    event = aged(ws_event("ws_heartbeat", connection_id=connection, who=old(listener(session))), 110 * 60)
    invoke("ws_heartbeat", event)
    warning = management_api.posts[connection][-1]
    assert warning["type"] == "connectionWarning" and 9 <= warning["remainingMinutes"] <= 10


def test_the_welcome_waits_for_the_connection_to_open_and_gives_up_on_one_that_never_does(management_api):
    from session_core.usecases import welcome

    connection = new_connection()
    management_api.gone.add(connection)  # not yet established: API Gateway answers 410
    threading.Timer(0.3, management_api.gone.discard, args=(connection,)).start()
    started = time.monotonic()
    assert welcome.deliver(connection, {"type": "sessionJoined"}) is True
    assert 0.25 <= time.monotonic() - started < 3
    assert management_api.posts[connection] == [{"type": "sessionJoined"}]

    never = new_connection()
    management_api.gone.add(never)
    started = time.monotonic()
    assert welcome.deliver(never, {"type": "sessionJoined"}, deadline_seconds=0.5) is False
    assert time.monotonic() - started < 1.0 and management_api.posts[never] == []


def test_published_messages_count_by_dialect_and_action(invoke, session, users, emf):
    who = hybrid(speaker(session, users))
    emf.clear()
    for action in ("pauseBroadcast", "resumeBroadcast", "getSessionStatus"):
        function = "ws_session_info" if action == "getSessionStatus" else "ws_session_control"
        invoke(function, ws_event(function, who=who, route=action, body={"action": action}))
    assert {a: emf.total("LegacyProtocolMessage", action=a, dialect="hybrid")
            for a in ("pauseBroadcast", "resumeBroadcast", "getSessionStatus")} == {
        "pauseBroadcast": 1, "resumeBroadcast": 1, "getSessionStatus": 1}


def test_a_native_connection_does_not_speak_the_published_dialects(invoke, session, users):
    for action in ("getSessionStatus", "joinSession", "muteBroadcast"):
        function = "ws_session_info" if action != "muteBroadcast" else "ws_session_control"
        reply = invoke(function, ws_event(function, who=speaker(session, users), route=action, body={"action": action}))
        assert reply[2]["code"] == "UNKNOWN_ACTION"


def test_status_changes_are_told_in_each_connections_dialect(invoke, session, users, management_api):
    from session_core.api import dialects
    from session_core.data.sessions import State
    from session_core.domain import Connection
    from session_core.usecases.broadcast import StatusChange

    paused = StatusChange(session["sessionId"], "paused", 2, False, {"es": 2}, State("active", 2, False, True),
                          speaker="speaker-connection")
    told = {(dialect, role): dialects.status_message(Connection("c", role, dialect=dialect), paused)
            for dialect in ("native", "hybrid", "old") for role in ("speaker", "listener")}
    assert told[("native", "listener")] == {"type": "status", "sessionId": session["sessionId"], "status": "paused",
                                            "listenerCount": 2, "listenersByLanguage": {"es": 2},
                                            "speakerConnected": True}
    assert told[("hybrid", "listener")]["type"] == "broadcastPaused"
    assert told[("hybrid", "speaker")]["type"] == "sessionStatus"
    assert told[("hybrid", "speaker")]["languageDistribution"] == {"es": 2}
    assert told[("old", "listener")]["type"] == "sessionPaused" and told[("old", "speaker")] is None
    count_only = StatusChange(session["sessionId"], "active", 3, False, {"es": 3}, State("active", 2, False))
    assert dialects.status_message(Connection("c", "listener", dialect="hybrid"), count_only) is None
    assert dialects.status_message(Connection("c", "listener", dialect="old"), count_only) is None
    muted = StatusChange(session["sessionId"], "active", 2, True, {}, State("active", 2, False))
    assert dialects.status_message(Connection("c", "listener", dialect="hybrid"), muted)["type"] == "broadcastMuted"
    assert dialects.status_message(Connection("c", "listener", dialect="native"), muted)["muted"] is True


def live_sessions_of(user_sub: str) -> list[dict]:
    items = boto3.client("dynamodb").scan(TableName="sessions-test")["Items"]
    return [i for i in items if i["sk"]["S"] == "META" and i["speakerId"]["S"] == user_sub
            and i["status"]["S"] != "ended"]


def items_naming(connection_id: str) -> list[dict]:
    items = boto3.client("dynamodb").scan(TableName="sessions-test")["Items"]
    return [i for i in items if connection_id in i["pk"]["S"] or connection_id in i["sk"]["S"]]


def test_an_old_create_whose_welcome_cannot_be_queued_fails_and_leaves_no_session(invoke, users, setenv):
    # Lambda refuses the asynchronous invocation: the handshake fails with 5xx (clients retry) and the session
    # it made ends at once, since no socket of it will ever close.
    setenv("WELCOME_FUNCTION_NAME", "no-such-function")
    connection, alice = new_connection(), users["alice"]["sub"]
    before = len(live_sessions_of(alice))
    who = {"sessionId": "", "role": "speaker", "userId": alice, "targetLanguage": "", "legacy": True, "dialect": "old"}
    query = {"action": "createSession", "sourceLanguage": "en", "qualityTier": "standard"}
    answer = invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection, who=who, query=query))
    assert answer["statusCode"] == 503
    assert len(live_sessions_of(alice)) == before and items_naming(connection) == []


def test_an_old_join_whose_welcome_cannot_be_queued_fails_and_is_not_counted(invoke, session, setenv):
    setenv("WELCOME_FUNCTION_NAME", "no-such-function")
    connection = new_connection()
    query = {"action": "joinSession", "sessionId": session["sessionId"], "targetLanguage": "es",
             "joinKey": session["joinKey"]}  # a link session: its listener came by the link
    answer = invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection, who=old(listener(session)),
                                               query=query))
    assert answer["statusCode"] == 503
    assert items_naming(connection) == []
    item = boto3.client("dynamodb").get_item(TableName="sessions-test", Key={
        "pk": {"S": f"SESSION#{session['sessionId']}"}, "sk": {"S": "META"}})["Item"]
    assert item["listenerCount"]["N"] == "0" and item.get("listeners_es", {"N": "0"})["N"] == "0"
