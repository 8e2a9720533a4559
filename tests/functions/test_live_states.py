"""The live states (docs/protocols.md "Live states"): the session item knows whether its speaker is connected,
the status messages say so, and the welcome function tells a connection the session's state once it is open,
in the connection's dialect. Invoked against moto and a stand-in Management API; the whole path (the
table's stream, the asynchronous welcome) runs in tests/e2e/test_live_states.py."""

import time

import boto3
import pytest

from tests.functions import test_ws_functions as ws
from tests.functions.test_ws_functions import connect, disconnect, listener, new_connection, speaker
from tests.support.lambdas import http_event, ws_event

# The WebSocket functions' fixtures, shared rather than copied.
fresh_settings = pytest.fixture(autouse=True)(ws.fresh_settings.__wrapped__)
users = pytest.fixture(ws.users.__wrapped__)
session = pytest.fixture(ws.session.__wrapped__)

TABLE = "sessions-test"


def session_item(session_id: str) -> dict:
    return boto3.client("dynamodb").get_item(TableName=TABLE, ConsistentRead=True, Key={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}})["Item"]


def welcome(invoke, connection_id: str, session_id: str, role: str, dialect: str = "native", message=None) -> None:
    event = {"connectionId": connection_id, "state": {"sessionId": session_id, "role": role, "dialect": dialect}}
    if message:
        event["message"] = message
    invoke.raw("ws_welcome", event)


def control(invoke, session, users, action: str) -> dict:
    return invoke("ws_session_control", ws_event("ws_session_control", who=speaker(session, users), route=action,
                                                 body={"action": action}))[2]


def test_the_session_item_knows_whether_its_speaker_is_connected_and_when_it_left(invoke, session, users):
    session_id = session["sessionId"]
    assert "speakerConnectionId" not in session_item(session_id)  # waiting for the speaker
    first = new_connection()
    assert connect(invoke, speaker(session, users), first) == 200
    assert session_item(session_id)["speakerConnectionId"]["S"] == first
    assert disconnect(invoke, speaker(session, users), first) == 200
    item = session_item(session_id)
    assert "speakerConnectionId" not in item and int(item["speakerDisconnectedAt"]["N"]) > 0
    again = new_connection()
    assert connect(invoke, speaker(session, users), again) == 200
    item = session_item(session_id)
    assert item["speakerConnectionId"]["S"] == again and "speakerDisconnectedAt" not in item


def test_a_native_connect_is_welcomed_with_the_status_speaker_and_listener_alike(invoke, session, users,
                                                                                  management_api):
    session_id = session["sessionId"]
    management_api.reset()
    talker, hearer = new_connection(), new_connection()
    assert connect(invoke, speaker(session, users), talker) == 200
    assert connect(invoke, listener(session), hearer) == 200
    welcome(invoke, talker, session_id, "speaker")
    welcome(invoke, hearer, session_id, "listener")
    expected = {"type": "status", "sessionId": session_id, "status": "active", "listenerCount": 1,
                "listenersByLanguage": {"es": 1}, "speakerConnected": True}
    assert management_api.posts[talker] == [expected] and management_api.posts[hearer] == [expected]


def test_the_welcome_tells_the_state_as_it_is_when_posted_not_when_the_connection_was_made(invoke, session, users,
                                                                                          management_api):
    session_id = session["sessionId"]
    management_api.reset()
    talker, hearer = new_connection(), new_connection()
    assert connect(invoke, listener(session), hearer) == 200  # before the speaker: waiting
    welcome(invoke, hearer, session_id, "listener")
    assert connect(invoke, speaker(session, users), talker) == 200
    control(invoke, session, users, "mute")
    welcome(invoke, hearer, session_id, "listener")
    assert disconnect(invoke, speaker(session, users), talker) == 200
    welcome(invoke, hearer, session_id, "listener")
    waiting, muted, gone = management_api.posts[hearer]
    assert waiting["speakerConnected"] is False and "speakerDisconnectedAt" not in waiting
    assert muted["speakerConnected"] is True and muted["muted"] is True
    assert gone["speakerConnected"] is False and gone["speakerDisconnectedAt"] > 0 and gone["muted"] is True


@pytest.mark.parametrize("dialect", ["native", "hybrid", "old"])
def test_an_ended_session_is_not_welcomed_with_a_state(invoke, session, users, management_api, dialect):
    management_api.reset()
    hearer = new_connection()
    assert invoke("delete_session", http_event("delete_session", session_id=session["sessionId"],
                                               sub=users["alice"]["sub"]))[0] in (200, 204)
    welcome(invoke, hearer, session["sessionId"], "listener", dialect)
    assert management_api.posts[hearer] == []  # the teardown says sessionEnded


def test_a_missing_session_is_not_welcomed_with_a_state(invoke, management_api):
    hearer = new_connection()
    welcome(invoke, hearer, "no-such-session-123", "listener")
    assert management_api.posts[hearer] == []


def test_the_published_dialects_are_welcomed_with_what_their_clients_read(invoke, session, users, management_api):
    session_id = session["sessionId"]
    management_api.reset()
    hybrid_speaker, hybrid_listener, old_listener = new_connection(), new_connection(), new_connection()
    assert connect(invoke, speaker(session, users), hybrid_speaker) == 200
    welcome(invoke, hybrid_listener, session_id, "listener", "hybrid")
    assert management_api.posts[hybrid_listener] == []  # live: the listener app needs no notice
    control(invoke, session, users, "pause")
    control(invoke, session, users, "mute")
    welcome(invoke, hybrid_speaker, session_id, "speaker", "hybrid")
    welcome(invoke, hybrid_listener, session_id, "listener", "hybrid")
    welcome(invoke, old_listener, session_id, "listener", "old", message={"type": "sessionJoined"})
    told = management_api.posts[hybrid_speaker]
    assert [m["type"] for m in told] == ["sessionStatus"]
    assert told[0]["speakerConnected"] is True and told[0]["status"] == "paused"
    assert [m["type"] for m in management_api.posts[hybrid_listener]] == ["broadcastPaused", "broadcastMuted"]
    # The old client's own welcome first, then the pause it joined in (it knows no mute).
    assert [m["type"] for m in management_api.posts[old_listener]] == ["sessionJoined", "sessionPaused"]


def test_a_native_connect_whose_welcome_cannot_be_queued_is_still_accepted(invoke, session, emf):
    # The test environment names a welcome function that does not exist: Lambda refuses the invocation.
    connection = new_connection()
    assert connect(invoke, listener(session), connection) == 200
    assert emf.total("WelcomeUnscheduled") == 1
    assert session_item(session["sessionId"])["listenerCount"]["N"] == "1"


def test_a_speakers_connect_and_disconnect_are_told_to_everyone_even_in_a_large_session(monkeypatch):
    from session_core.usecases import broadcast

    monkeypatch.setattr(broadcast, "COUNTS_TO_ALL_UP_TO", 0)

    def record(old: dict, new: dict) -> dict:
        base = {"pk": {"S": "SESSION#s-1"}, "sk": {"S": "META"}, "sessionId": {"S": "s-1"},
                "status": {"S": "active"}, "listenerCount": {"N": "5"}, "listeners_es": {"N": "5"},
                "version": {"N": "3"}, "expiresAt": {"N": "9999999999"}}
        return {"eventName": "MODIFY", "dynamodb": {"SequenceNumber": "1", "OldImage": {**base, **old},
                                                    "NewImage": {**base, **new}}}

    left = broadcast.changed_sessions([record({"speakerConnectionId": {"S": "c-1"}},
                                              {"speakerDisconnectedAt": {"N": "1700000000"}})])["s-1"]
    assert left.for_everyone() and not left.speakerConnected and left.speakerDisconnectedAt == 1700000000
    back = broadcast.changed_sessions([record({"speakerDisconnectedAt": {"N": "1700000000"}},
                                              {"speakerConnectionId": {"S": "c-2"}})])["s-1"]
    assert back.for_everyone() and back.speakerConnected and back.speakerDisconnectedAt is None
    # A reconnect that replaced the speaker's connection changes no one's state: nothing to tell.
    assert broadcast.changed_sessions([record({"speakerConnectionId": {"S": "c-1"}},
                                              {"speakerConnectionId": {"S": "c-2"}})]) == {}


def test_the_welcome_of_a_client_that_left_at_once_stops_retrying(invoke, session, management_api, emf):
    # A connection that closed before its welcome was posted answers 410 forever, as one not yet open does; its
    # record, removed by $disconnect, tells the two apart, so the welcome does not hold a function for 5 s.
    session_id = session["sessionId"]
    brief = new_connection()
    assert connect(invoke, listener(session), brief) == 200
    assert disconnect(invoke, listener(session), brief) == 200
    management_api.gone.add(brief)
    emf.clear()
    started = time.monotonic()
    welcome(invoke, brief, session_id, "listener")
    assert time.monotonic() - started < 1.5
    assert management_api.posts[brief] == [] and emf.total("WelcomeUndelivered") == 1
