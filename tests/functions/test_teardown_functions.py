"""Starting the teardown, and the two functions the teardown workflow calls."""

import os
import time
import uuid

import boto3
import pytest
from session_core.platform import settings as settings_module

from tests.support.lambdas import http_event, sample_event, ws_event

ALICE = "alice-sub"


def executions():
    sfn = boto3.client("stepfunctions")
    return [e["name"] for e in sfn.list_executions(stateMachineArn=os.environ["TEARDOWN_STATE_MACHINE_ARN"])["executions"]]


def create(invoke):
    status, _, body = invoke("create_session", http_event("create_session", sub=ALICE, body={"sourceLanguage": "en"}))
    assert status == 201
    return body


def teardowns_of(session):
    return [name for name in executions() if name.startswith(session["sessionId"] + "-")]


def test_delete_starts_one_teardown_named_after_the_session(invoke):
    session = create(invoke)
    for _ in range(2):
        assert invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))[0] == 204
    assert teardowns_of(session) == [f"{session['sessionId']}-{session['createdAt']}"]


def test_patch_to_ended_starts_the_teardown_and_other_patches_do_not(invoke):
    session = create(invoke)
    invoke("update_session", http_event("update_session", session_id=session["sessionId"], sub=ALICE,
                                        body={"status": "paused"}))
    assert teardowns_of(session) == []
    invoke("update_session", http_event("update_session", session_id=session["sessionId"], sub=ALICE,
                                        body={"status": "ended"}))
    assert len(teardowns_of(session)) == 1


def test_a_legacy_session_is_torn_down_when_its_socket_closes(invoke):
    connection = f"legacy-{uuid.uuid4().hex[:8]}="
    who = {"sessionId": "", "role": "speaker", "userId": ALICE, "targetLanguage": "", "legacy": True}
    _, _, created = invoke("ws_create_session", ws_event("ws_create_session", connection_id=connection, who=who,
                                                         body={"action": "createSession", "sourceLanguage": "en"}))
    invoke.raw("ws_disconnect", ws_event("ws_disconnect", connection_id=connection, who=who))
    assert len(teardowns_of(created)) == 1


def join(invoke, session, n):
    ids = [f"listener-{uuid.uuid4().hex[:8]}=" for _ in range(n)]
    who = {"sessionId": session["sessionId"], "role": "listener", "userId": "", "targetLanguage": "",
           "legacy": False}
    for connection in ids:
        # Anonymous: the session's link carries its key.
        query = {"sessionId": session["sessionId"], "role": "listener", "joinKey": session["joinKey"]}
        assert invoke.raw("ws_connect", ws_event("ws_connect", connection_id=connection, who=who,
                                                 query=query))["statusCode"] == 200
    return ids


def batch(session, ids):
    return {"sessionId": session["sessionId"], "executionName": "test",
            "connections": [{"connectionId": {"S": c}, "role": {"S": "listener"}} for c in ids]}


def remaining_connections(session):
    page = boto3.client("dynamodb").query(
        TableName="sessions-test", KeyConditionExpression="pk = :pk AND begins_with(sk, :c)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session['sessionId']}"}, ":c": {"S": "CONN#"}})
    return page["Count"]


def test_worker_says_goodbye_closes_and_forgets_each_connection(invoke, management_api):
    management_api.reset()
    session = create(invoke)
    ids = join(invoke, session, 3)
    management_api.gone.add(ids[0])  # already disconnected: counts as done
    result = invoke.raw("teardown_worker", batch(session, ids))
    assert result == {"closed": 3}
    for connection in ids[1:]:
        assert management_api.posts[connection] == [{"type": "sessionEnded", "sessionId": session["sessionId"],
                                                     "message": "The speaker ended this session."}]
        assert connection in management_api.closed
    assert remaining_connections(session) == 0


def test_worker_fails_the_batch_on_a_transient_error_and_a_retry_completes_it(invoke, management_api):
    management_api.reset()
    session = create(invoke)
    ids = join(invoke, session, 3)
    management_api.failing[ids[1]] = 4  # outlasts botocore: one try and three retries
    with pytest.raises(Exception):
        invoke.raw("teardown_worker", batch(session, ids))
    assert ids[1] not in management_api.closed
    # Records go before the sockets: the listeners were counted off once, and the retry does not count them again.
    assert (remaining_connections(session), listener_count(session)) == (0, 0)
    assert invoke.raw("teardown_worker", batch(session, ids)) == {"closed": 3}  # the workflow's retry
    assert (remaining_connections(session), listener_count(session)) == (0, 0)
    assert all(c in management_api.closed for c in ids)


def listener_count(session: dict) -> int:
    item = boto3.client("dynamodb").get_item(TableName="sessions-test", Key={
        "pk": {"S": f"SESSION#{session['sessionId']}"}, "sk": {"S": "META"}})["Item"]
    return int(item["listenerCount"]["N"])


def test_finish_marks_the_teardown_complete_and_reports_the_duration(invoke):
    session = create(invoke)
    invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    event = sample_event("teardown_finish") | {"sessionId": session["sessionId"]}
    result = invoke.raw("teardown_finish", event)
    assert 0 <= result["sessionDurationSeconds"] <= 5
    item = boto3.client("dynamodb").get_item(TableName="sessions-test", Key={
        "pk": {"S": f"SESSION#{session['sessionId']}"}, "sk": {"S": "META"}})["Item"]
    assert "teardownCompletedAt" in item


def test_sample_events_of_the_workflow_functions_are_handled(invoke):
    assert invoke.raw("teardown_worker", sample_event("teardown_worker")) == {"closed": 2}
    assert invoke.raw("teardown_finish", sample_event("teardown_finish")) == {"sessionDurationSeconds": 0}


def test_a_failed_teardown_start_is_made_good_by_the_retried_delete(invoke, monkeypatch):
    session = create(invoke)
    real = os.environ["TEARDOWN_STATE_MACHINE_ARN"]
    monkeypatch.setenv("TEARDOWN_STATE_MACHINE_ARN", real.replace("teardown-test", "missing"))
    settings_module.settings.cache_clear()  # settings are read once per execution environment
    status, _, body = invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))
    assert (status, body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE")
    monkeypatch.setenv("TEARDOWN_STATE_MACHINE_ARN", real)
    settings_module.settings.cache_clear()
    assert teardowns_of(session) == []
    assert invoke("delete_session", http_event("delete_session", session_id=session["sessionId"], sub=ALICE))[0] == 204
    assert len(teardowns_of(session)) == 1
    status, _, body = invoke("update_session", http_event("update_session", session_id=session["sessionId"],
                                                          sub=ALICE, body={"status": "ended"}))
    assert (status, body["error"]["code"]) == (409, "SESSION_ENDED")
    assert len(teardowns_of(session)) == 1


def teardown_statuses(session) -> dict[str, str]:
    sfn = boto3.client("stepfunctions")
    found = sfn.list_executions(stateMachineArn=os.environ["TEARDOWN_STATE_MACHINE_ARN"])["executions"]
    return {e["name"]: e["status"] for e in found if e["name"].startswith(session["sessionId"] + "-")}


@pytest.mark.parametrize("closed", ["FAILED", "ABORTED"])
def test_a_teardown_that_did_not_succeed_runs_again_on_the_next_delete(invoke, monkeypatch, closed):
    """Step Functions refuses a closed execution's name for 90 days: the retried DELETE must start another."""
    session = create(invoke)
    delete = http_event("delete_session", session_id=session["sessionId"], sub=ALICE)
    if closed == "FAILED":
        monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")  # moto: the execution it starts has failed
    assert invoke("delete_session", delete)[0] == 204
    monkeypatch.delenv("SF_EXECUTION_HISTORY_TYPE", raising=False)
    (first,) = teardown_statuses(session)
    if closed == "ABORTED":
        sfn = boto3.client("stepfunctions")
        arn = next(e["executionArn"] for e in sfn.list_executions(
            stateMachineArn=os.environ["TEARDOWN_STATE_MACHINE_ARN"])["executions"] if e["name"] == first)
        sfn.stop_execution(executionArn=arn)
    assert teardown_statuses(session) == {first: closed}

    assert invoke("delete_session", delete)[0] == 204
    statuses = teardown_statuses(session)
    assert sorted(statuses.values()) == sorted([closed, "RUNNING"]), statuses
    # While the new one runs (or once it succeeded) a repeat starts nothing.
    assert invoke("delete_session", delete)[0] == 204
    assert teardown_statuses(session) == statuses


def test_a_listener_still_connecting_is_told_and_closed_once_it_opens(invoke, management_api):
    # API Gateway answers 410 until $connect has returned: a socket the teardown meets in that window
    # opens afterwards, and must not be left open, unrecorded, for two hours.
    management_api.reset()
    session = create(invoke)
    (connecting,) = join(invoke, session, 1)
    management_api.opening[connecting] = 3
    event = batch(session, [connecting])
    event["connections"][0]["connectedAt"] = {"N": str(int(time.time()))}
    assert invoke.raw("teardown_worker", event) == {"closed": 1}
    assert [m["type"] for m in management_api.posts[connecting]] == ["sessionEnded"]
    assert connecting in management_api.closed


def test_a_gone_connection_whose_connect_window_has_passed_is_not_waited_for(invoke, management_api):
    management_api.reset()
    session = create(invoke)
    (gone,) = join(invoke, session, 1)
    management_api.gone.add(gone)
    event = batch(session, [gone])
    event["connections"][0]["connectedAt"] = {"N": str(int(time.time()) - 60)}
    started = time.monotonic()
    assert invoke.raw("teardown_worker", event) == {"closed": 1}
    assert time.monotonic() - started < 2


def test_a_speaker_is_recorded_before_the_session_names_it(invoke, monkeypatch):
    # The teardown finds sockets by their records: a session naming a speaker connection whose record is
    # not written (yet, or ever: the function died in between) would leave that socket open.
    from session_core import errors
    from session_core.data import connections

    session = create(invoke)
    writes = []
    real = connections.request

    def failing_second_write(operation, **parameters):
        writes.append(operation)
        if len(writes) == 2:
            raise errors.ServiceUnavailable()
        return real(operation, **parameters)

    monkeypatch.setattr(connections, "request", failing_second_write)
    who = {"sessionId": session["sessionId"], "role": "speaker", "userId": ALICE, "targetLanguage": "",
           "legacy": False}
    assert invoke.raw("ws_connect", ws_event("ws_connect", connection_id="speaker-x=", who=who))["statusCode"] == 503
    monkeypatch.undo()
    item = boto3.client("dynamodb").get_item(TableName="sessions-test", ConsistentRead=True, Key={
        "pk": {"S": f"SESSION#{session['sessionId']}"}, "sk": {"S": "META"}})["Item"]
    named = item.get("speakerConnectionId", {}).get("S")
    assert named is None or remaining_connections(session) == 1, "the session names a speaker with no record"
