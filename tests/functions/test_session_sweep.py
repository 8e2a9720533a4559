"""The sweep (SessionSweepFunction, every minute): counts heal from the records, gone sockets' records are
dropped, and sessions nobody ended (expired; an old-protocol speaker's lost $disconnect) are torn down."""

import json
import time
import uuid

import boto3
import pytest

from tests.support.lambdas import http_event, sample_event, ws_event

TABLE = "sessions-test"
ALICE = "alice-sub"


@pytest.fixture
def ddb():
    return boto3.client("dynamodb")


def create(invoke) -> str:
    status, _, body = invoke("create_session", http_event("create_session", sub=ALICE, body={"sourceLanguage": "en"}))
    assert status == 201
    return body["sessionId"]


def meta(session_id: str) -> dict:
    return {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}}


def session_item(ddb, session_id: str) -> dict:
    return ddb.get_item(TableName=TABLE, Key=meta(session_id), ConsistentRead=True)["Item"]


def put_record(ddb, session_id: str, *, role: str = "listener", language: str = "es", age: int = 3600) -> str:
    connection_id = f"conn-{uuid.uuid4().hex[:10]}="
    ddb.put_item(TableName=TABLE, Item={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connection_id}"},
        "connectionId": {"S": connection_id}, "sessionId": {"S": session_id}, "role": {"S": role},
        "userId": {"S": ""}, "targetLanguage": {"S": language}, "dialect": {"S": "native"},
        "connectedAt": {"N": str(int(time.time()) - age)}, "expiresAt": {"N": str(int(time.time()) + 7800)}})
    return connection_id


def records(ddb, session_id: str) -> list[str]:
    page = ddb.query(TableName=TABLE, ConsistentRead=True, KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
                     ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":c": {"S": "CONN#"}})
    return [item["connectionId"]["S"] for item in page["Items"]]


def teardowns_of(session_id: str) -> list[dict]:
    sfn = boto3.client("stepfunctions")
    machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
    return [e for e in sfn.list_executions(stateMachineArn=machine)["executions"]
            if e["name"].startswith(f"{session_id}-")]


def sweep(invoke):
    assert invoke.raw("session_sweep", sample_event("session_sweep")) is None


def test_counts_drifted_from_the_records_are_set_back_to_them(invoke, management_api, ddb):
    management_api.reset()
    session_id = create(invoke)
    for language in ("es", "es", "fr"):
        put_record(ddb, session_id, language=language)
    # A retried ADD counted twice, a killed $connect not at all: the counts say what the records do not.
    ddb.update_item(TableName=TABLE, Key=meta(session_id), UpdateExpression="SET listenerCount = :n, listeners_es = :es, listeners_de = :de",
                    ExpressionAttributeValues={":n": {"N": "7"}, ":es": {"N": "5"}, ":de": {"N": "2"}})
    sweep(invoke)
    item = session_item(ddb, session_id)
    assert {k: item[k]["N"] for k in ("listenerCount", "listeners_es", "listeners_fr", "listeners_de")} == {
        "listenerCount": "3", "listeners_es": "2", "listeners_fr": "1", "listeners_de": "0"}


def test_records_of_gone_sockets_are_dropped_and_a_young_one_is_kept(invoke, management_api, ddb):
    management_api.reset()
    session_id = create(invoke)
    alive, lost, connecting = (put_record(ddb, session_id) for _ in range(3))
    ddb.delete_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connecting}"}})
    connecting = put_record(ddb, session_id, age=2)
    management_api.gone.update({lost, connecting})  # a lost $disconnect; a $connect not yet returned
    sweep(invoke)
    assert sorted(records(ddb, session_id)) == sorted([alive, connecting])
    assert session_item(ddb, session_id)["listenerCount"]["N"] == "2"


def test_an_expired_session_is_ended_and_torn_down(invoke, management_api, ddb):
    management_api.reset()
    session_id = create(invoke)
    put_record(ddb, session_id)
    ddb.update_item(TableName=TABLE, Key=meta(session_id), UpdateExpression="SET expiresAt = :past",
                    ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
    sweep(invoke)
    assert session_item(ddb, session_id)["status"]["S"] == "ended"
    assert len(teardowns_of(session_id)) == 1
    sweep(invoke)  # the teardown runs: not started twice
    assert len(teardowns_of(session_id)) == 1


def test_an_old_protocol_session_whose_speaker_disconnect_was_lost_is_torn_down(invoke, management_api, ddb):
    management_api.reset()
    who = {"sessionId": "", "role": "speaker", "userId": ALICE, "targetLanguage": "", "legacy": True}
    connection = f"legacy-{uuid.uuid4().hex[:8]}="
    _, _, created = invoke("ws_create_session", ws_event("ws_create_session", connection_id=connection, who=who,
                                                         body={"action": "createSession", "sourceLanguage": "en"}))
    session_id = created["sessionId"]
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connection}"}},
                    UpdateExpression="SET connectedAt = :then", ExpressionAttributeValues={":then": {"N": str(int(time.time()) - 60)}})
    sweep(invoke)
    assert session_item(ddb, session_id)["status"]["S"] == "active"  # its socket is open
    management_api.gone.add(connection)  # closed, and its $disconnect never came
    sweep(invoke)
    assert session_item(ddb, session_id)["status"]["S"] == "ended"
    assert len(teardowns_of(session_id)) == 1


def test_a_torn_down_session_is_no_longer_listed(invoke, management_api, ddb):
    management_api.reset()
    session_id = create(invoke)
    assert invoke("delete_session", http_event("delete_session", session_id=session_id, sub=ALICE))[0] == 204
    invoke.raw("teardown_finish", {"sessionId": session_id, "startedAt": "2026-12-07T12:00:00+00:00"})
    sweep(invoke)
    from session_core.data import sessions
    assert session_id not in [live.sessionId for live in sessions.live_sessions()]
