"""The table stream's consumer (StatusBroadcastFunction): one session's failure, the order of a session's
changes across retries, and the removal of a crowd of gone sockets."""

import json
import time
import uuid

import boto3
import pytest

from tests.support.lambdas import http_event, sample_event

TABLE = "sessions-test"


@pytest.fixture
def users(cognito):
    from jwt import decode

    return {name: {"sub": decode(tokens["IdToken"], options={"verify_signature": False})["sub"]}
            for name, tokens in cognito["tokens"].items()}


def create(invoke, users) -> dict:
    status, _, body = invoke("create_session", http_event("create_session", sub=users["alice"]["sub"],
                                                          body={"sourceLanguage": "en"}))
    assert status == 201
    return body


def put_listener(session_id: str, connected_at: int | None = None, language: str = "es") -> str:
    connection_id = f"conn-{uuid.uuid4().hex[:10]}="
    boto3.client("dynamodb").put_item(TableName=TABLE, Item={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connection_id}"},
        "connectionId": {"S": connection_id}, "sessionId": {"S": session_id}, "role": {"S": "listener"},
        "userId": {"S": ""}, "targetLanguage": {"S": language}, "dialect": {"S": "native"},
        "connectedAt": {"N": str(connected_at or int(time.time()) - 3600)},
        "expiresAt": {"N": str(int(time.time()) + 7800)}})
    return connection_id


def record(session_id: str, *, status: str, version: int, count: int = 0, sequence: str = "100") -> dict:
    event = sample_event("status_broadcast")
    change = json.loads(json.dumps(event["Records"][0]))
    change["dynamodb"]["SequenceNumber"] = sequence
    for image in (change["dynamodb"]["NewImage"], change["dynamodb"]["OldImage"]):
        image["sessionId"]["S"] = session_id
        image["pk"]["S"] = f"SESSION#{session_id}"
    new = change["dynamodb"]["NewImage"]
    new["status"]["S"], new["version"]["N"], new["listenerCount"]["N"] = status, str(version), str(count)
    change["dynamodb"]["OldImage"]["status"]["S"] = "active" if status == "paused" else "paused"
    return change


def test_one_sessions_failure_reports_only_its_records(invoke, users, management_api, monkeypatch):
    from session_core import errors
    from session_core.data import connections

    management_api.reset()
    first, broken = create(invoke, users), create(invoke, users)
    told = put_listener(first["sessionId"])
    pages = connections.pages

    def failing_pages(session_id, *args, **kwargs):
        if session_id == broken["sessionId"]:
            raise errors.ServiceUnavailable()
        return pages(session_id, *args, **kwargs)

    monkeypatch.setattr(connections, "pages", failing_pages)
    result = invoke.raw("status_broadcast", {"Records": [
        record(first["sessionId"], status="paused", version=2, sequence="100"),
        record(broken["sessionId"], status="paused", version=2, sequence="200")]})
    # Lambda retries from the reported record on; the records before it are done.
    assert result == {"batchItemFailures": [{"itemIdentifier": "200"}]}
    assert [m["status"] for m in management_api.posts[told]] == ["paused"]


def test_an_older_change_is_not_posted_after_a_newer_one(invoke, users, management_api):
    management_api.reset()
    session = create(invoke, users)
    told = put_listener(session["sessionId"])
    newer = record(session["sessionId"], status="active", version=4, sequence="300")
    newer["dynamodb"]["OldImage"]["status"]["S"] = "paused"
    assert invoke.raw("status_broadcast", {"Records": [newer]}) == {"batchItemFailures": []}
    # A bisected batch's first half, retried after the second half went through.
    older = record(session["sessionId"], status="paused", version=3, sequence="200")
    assert invoke.raw("status_broadcast", {"Records": [older]}) == {"batchItemFailures": []}
    assert [m["status"] for m in management_api.posts[told]] == ["active"]
    # The same version again (a retry of a failed batch) is posted again: its sockets may have missed it.
    assert invoke.raw("status_broadcast", {"Records": [newer]}) == {"batchItemFailures": []}
    assert [m["status"] for m in management_api.posts[told]] == ["active", "active"]


@pytest.mark.parametrize("counted", [61, 0], ids=["counted", "drifted-low"])
def test_a_crowd_of_gone_sockets_is_removed_and_counted_off_in_one_write(invoke, users, management_api,
                                                                        monkeypatch, counted):
    # Each gone record is deleted (at once, in threads) and the listeners whose record this removed are taken
    # off the session in one write: exact, however many. A count already below that is recounted instead.
    from session_core.platform import aws

    management_api.reset()
    session = create(invoke, users)
    gone = [put_listener(session["sessionId"]) for _ in range(60)]
    alive = put_listener(session["sessionId"])
    key = {"pk": {"S": f"SESSION#{session['sessionId']}"}, "sk": {"S": "META"}}
    boto3.client("dynamodb").update_item(TableName=TABLE, Key=key, UpdateExpression="SET listenerCount = :n, "
                                         "listeners_es = :n", ExpressionAttributeValues={":n": {"N": str(counted)}})
    management_api.gone.update(gone)
    calls = []
    real_call = aws.call

    def counting_call(service, operation, /, **parameters):
        calls.append((operation, parameters.get("Key", {}).get("sk", {}).get("S", "")))
        return real_call(service, operation, **parameters)

    monkeypatch.setattr(aws, "call", counting_call)
    monkeypatch.setattr("session_core.data.table.call", counting_call)
    result = invoke.raw("status_broadcast", {"Records": [record(session["sessionId"], status="paused", version=2)]})
    assert result == {"batchItemFailures": []}
    assert sum(op == "delete_item" for op, _ in calls) == 60
    count_writes = [op for op, sk in calls if op == "update_item" and sk == "META"]
    assert count_writes == ["update_item"] if counted else len(count_writes) == 2  # the ADD (and the recount)
    remaining = boto3.client("dynamodb").query(
        TableName=TABLE, KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session['sessionId']}"}, ":c": {"S": "CONN#"}})
    assert [i["connectionId"]["S"] for i in remaining["Items"]] == [alive]
    item = boto3.client("dynamodb").get_item(TableName=TABLE, ConsistentRead=True, Key=key)["Item"]
    assert (item["listenerCount"]["N"], item["listeners_es"]["N"]) == ("1", "1")


def put_speaker(session_id: str) -> str:
    """A speaker's record, named by the session item as $connect names it."""
    connection_id = put_listener(session_id)
    ddb = boto3.client("dynamodb")
    ddb.update_item(TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{connection_id}"}},
                    UpdateExpression="SET #role = :speaker REMOVE targetLanguage",
                    ExpressionAttributeNames={"#role": "role"}, ExpressionAttributeValues={":speaker": {"S": "speaker"}})
    return connection_id


def count_record(session_id: str, count: int, speaker: str | None, sequence: str = "100") -> dict:
    """A join: the count alone changed."""
    change = record(session_id, status="active", version=2, count=count, sequence=sequence)
    old, new = change["dynamodb"]["OldImage"], change["dynamodb"]["NewImage"]
    old["status"]["S"], old["listenerCount"]["N"] = "active", str(count - 1)
    if speaker:
        new["speakerConnectionId"] = old["speakerConnectionId"] = {"S": speaker}
    return change


@pytest.fixture
def small_sessions_up_to_2(monkeypatch):
    from session_core.usecases import broadcast

    monkeypatch.setattr(broadcast, "COUNTS_TO_ALL_UP_TO", 2)


@pytest.fixture
def counted_calls(monkeypatch):
    from session_core.platform import aws

    calls = []
    real_call = aws.call

    def counting_call(service, operation, /, **parameters):
        calls.append(operation)
        return real_call(service, operation, **parameters)

    monkeypatch.setattr(aws, "call", counting_call)
    monkeypatch.setattr("session_core.data.table.call", counting_call)
    return calls


def test_a_count_change_in_a_large_session_is_told_to_the_speaker_alone(invoke, users, management_api,
                                                                        small_sessions_up_to_2, counted_calls):
    management_api.reset()
    session_id = create(invoke, users)["sessionId"]
    speaker = put_speaker(session_id)
    listeners = [put_listener(session_id) for _ in range(3)]
    counted_calls.clear()
    result = invoke.raw("status_broadcast", {"Records": [count_record(session_id, 3, speaker)]})
    assert result == {"batchItemFailures": []}
    # The speaker's count is exact; the listeners are not posted to, and their records are not read.
    assert management_api.posts[speaker] == [
        {"type": "status", "sessionId": session_id, "status": "active", "listenerCount": 3, "listenersByLanguage": {},
         "speakerConnected": True}]
    assert all(not management_api.posts[listener] for listener in listeners)
    assert "query" not in counted_calls and counted_calls.count("get_item") == 1


def test_a_count_change_in_a_small_session_is_told_to_everyone(invoke, users, management_api,
                                                              small_sessions_up_to_2):
    management_api.reset()
    session_id = create(invoke, users)["sessionId"]
    speaker = put_speaker(session_id)
    listeners = [put_listener(session_id) for _ in range(2)]
    result = invoke.raw("status_broadcast", {"Records": [count_record(session_id, 2, speaker)]})
    assert result == {"batchItemFailures": []}
    for connection in (speaker, *listeners):
        assert [m["listenerCount"] for m in management_api.posts[connection]] == [2]


def test_a_pause_in_a_large_session_is_told_to_everyone_with_the_count(invoke, users, management_api,
                                                                       small_sessions_up_to_2):
    management_api.reset()
    session_id = create(invoke, users)["sessionId"]
    speaker = put_speaker(session_id)
    listeners = [put_listener(session_id) for _ in range(3)]
    # A join and the pause in one batch: reduced to the pause, which every socket is told.
    pause = record(session_id, status="paused", version=3, count=3, sequence="200")
    pause["dynamodb"]["OldImage"]["listenerCount"]["N"] = "3"
    result = invoke.raw("status_broadcast", {"Records": [count_record(session_id, 3, speaker), pause]})
    assert result == {"batchItemFailures": []}
    for connection in (speaker, *listeners):
        assert management_api.posts[connection] == [
            {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 3,
             "listenersByLanguage": {}, "speakerConnected": False}]


def test_a_count_change_in_a_large_session_without_a_speaker_is_told_to_nobody(invoke, users, management_api,
                                                                                small_sessions_up_to_2,
                                                                                counted_calls):
    management_api.reset()
    session_id = create(invoke, users)["sessionId"]
    listeners = [put_listener(session_id) for _ in range(3)]
    counted_calls.clear()
    assert invoke.raw("status_broadcast", {"Records": [count_record(session_id, 3, None)]}) == {"batchItemFailures": []}
    assert all(not management_api.posts[listener] for listener in listeners)
    assert "query" not in counted_calls and "get_item" not in counted_calls


def test_a_gone_speaker_told_a_count_is_released(invoke, users, management_api, small_sessions_up_to_2):
    management_api.reset()
    session_id = create(invoke, users)["sessionId"]
    speaker = put_speaker(session_id)
    [put_listener(session_id) for _ in range(3)]
    boto3.client("dynamodb").update_item(
        TableName=TABLE, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}},
        UpdateExpression="SET speakerConnectionId = :c", ExpressionAttributeValues={":c": {"S": speaker}})
    management_api.gone.add(speaker)
    assert invoke.raw("status_broadcast", {"Records": [count_record(session_id, 3, speaker)]}) == {"batchItemFailures": []}
    item = boto3.client("dynamodb").get_item(TableName=TABLE, ConsistentRead=True, Key={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}})["Item"]
    assert "speakerConnectionId" not in item
