"""Session teardown end to end: DELETE over HTTP, the Step Functions workflow (statemachines/teardown.asl.json)
executed by the local stack's moto with its Lambda tasks running the real TeardownWorker and TeardownFinish
handlers, and real WebSocket connections that must each be told `sessionEnded` and then be closed.

The failure cases use the local stack itself: connection records whose sockets are gone (the local
Management API answers 410), and its @faults hook (local_stack/ws_api.py), which makes the posts to one
connection answer 500 until released, so a worker batch fails and is retried.
Nothing sleeps for timing: every wait is a bounded poll or a bounded receive.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote, urlencode

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.e2e.conftest import LocalStackHandle, eventually

pytestmark = pytest.mark.local_only("reads the teardown executions from the embedded Step Functions, or injects faults")

LISTENERS = 200
BATCH = 20  # sockets opened at once: gentle on two cores
GOODBYE_WAIT = 30.0  # every socket told and closed after the DELETE
EXECUTION_WAIT = 60.0


# --------------------------------------------------------------------------- helpers


def run(coroutine, timeout: float = 180.0):
    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)
    return asyncio.run(bounded())


async def open_ws(stack: LocalStackHandle, **params: str) -> ClientConnection:
    url = f"{stack['webSocketUrl']}?{urlencode({k: v for k, v in params.items() if v is not None})}"
    # No client pings (a busy stack must not fail them), no receive queue limit (the join broadcasts
    # must not back up into the Management API while a socket is not being read).
    return await connect(url, open_timeout=30, close_timeout=5, ping_interval=None, max_queue=None)


async def open_session_sockets(stack: LocalStackHandle, session_id: str, listeners: int) -> list[ClientConnection]:
    """The speaker first, then `listeners` listeners, opened concurrently a batch at a time."""
    sockets = [await open_ws(stack, sessionId=session_id, role="speaker", token=stack.token("alice"))]
    try:
        for start in range(0, listeners, BATCH):
            sockets += await asyncio.gather(*(open_ws(stack, sessionId=session_id, role="listener",
                                                      joinKey=JOIN_KEYS.get(session_id))
                                              for _ in range(min(BATCH, listeners - start))))
    except BaseException:
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        raise
    return sockets


async def until_closed(ws: ClientConnection) -> tuple[int | None, list[dict]]:
    """Every message the socket receives until the server closes it, and the close code."""
    messages = []
    try:
        async for frame in ws:
            messages.append(json.loads(frame))
    except ConnectionClosed:
        pass
    return ws.close_code, messages


async def status_seen(ws: ClientConnection, listener_count: int, timeout: float = 30.0) -> None:
    """Reads until the socket is told the session's listener count is `listener_count`."""
    async with asyncio.timeout(timeout):
        async for frame in ws:
            message = json.loads(frame)
            if message.get("type") == "status" and message.get("listenerCount") == listener_count:
                return


async def goodbyes(sockets: list[ClientConnection], readers: list[asyncio.Task],
                   timeout: float = GOODBYE_WAIT) -> list[tuple[int | None, list[dict]]]:
    _, pending = await asyncio.wait(readers, timeout=timeout)
    if pending:
        still_open = len(pending)
        for reader in pending:
            reader.cancel()
        await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
        raise AssertionError(f"{still_open} of {len(sockets)} sockets still open {timeout} s after the DELETE")
    return [reader.result() for reader in readers]


def assert_told_then_closed(results: list[tuple[int | None, list[dict]]], session_id: str) -> None:
    """Each socket got exactly one sessionEnded and was then closed (DeleteConnection: 1001).

    A status broadcast already on its way when the session ended may still land between the sessionEnded
    and the close (the stream's batching window is 1 s): the contract says sessionEnded comes before
    the close, not that nothing else does, so a trailing status is tolerated, nothing else."""
    problems = []
    for index, (code, messages) in enumerate(results):
        ended = [i for i, m in enumerate(messages) if m.get("type") == "sessionEnded"]
        if (len(ended) != 1 or messages[ended[0]] != {"type": "sessionEnded", "sessionId": session_id,
                                                       "message": messages[ended[0]].get("message")}
                or any(m.get("type") != "status" for m in messages[ended[0] + 1:]) or code != 1001):
            problems.append((index, code, messages[-3:]))
    assert not problems, f"{len(problems)} of {len(results)} sockets not told once then closed: {problems[:5]}"


def connection_items(stack: LocalStackHandle, session_id: str) -> list[dict]:
    pages = stack.aws("dynamodb").get_paginator("query").paginate(
        TableName=stack["tableName"], ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":conn": {"S": "CONN#"}})
    return [item for page in pages for item in page["Items"]]


def session_item(stack: LocalStackHandle, session_id: str) -> dict:
    return stack.aws("dynamodb").get_item(TableName=stack["tableName"], ConsistentRead=True, Key={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}})["Item"]


def executions(stack: LocalStackHandle, session_id: str) -> list[dict]:
    """Teardown executions of this session (names are `<sessionId>-<createdAt>`)."""
    sfn = stack.aws("stepfunctions")
    found = []
    for arn in stack["stateMachines"].values():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            found += [e for e in page["executions"] if e["name"].startswith(f"{session_id}-")]
    return found


def history(stack: LocalStackHandle, execution_arn: str) -> list[dict]:
    pages = stack.aws("stepfunctions").get_paginator("get_execution_history").paginate(executionArn=execution_arn)
    return [event for page in pages for event in page["events"]]


def finished_execution(stack: LocalStackHandle, session_id: str) -> dict:
    def finished():
        found = executions(stack, session_id)
        return found if found and all(e["status"] != "RUNNING" for e in found) else None
    found = eventually(finished, EXECUTION_WAIT, f"the teardown of {session_id} finished")
    assert len(found) == 1, found
    return found[0]


def assert_torn_down(stack: LocalStackHandle, http: httpx.Client, session: dict) -> list[dict]:
    """The execution succeeded, no connection record is left, the session is ended and its teardown
    recorded. Returns the execution's history."""
    session_id = session["sessionId"]
    execution = finished_execution(stack, session_id)
    events = history(stack, execution["executionArn"])
    failures = [e for e in events if e["type"] in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut")]
    assert execution["status"] == "SUCCEEDED", failures or events[-3:]
    assert execution["name"] == f"{session_id}-{session['createdAt']}"
    assert connection_items(stack, session_id) == []
    ended = http.get(f"/sessions/{session_id}", headers=stack.auth()).json()
    assert (ended["status"], ended["listenerCount"]) == ("ended", 0)
    item = session_item(stack, session_id)
    assert int(item["teardownCompletedAt"]["N"]) >= int(item["endedAt"]["N"]) >= session["createdAt"]
    return events


def worker_inputs(events: list[dict]) -> list[list[str]]:
    """The connection IDs of each TeardownWorker invocation the execution scheduled (retries included)."""
    batches = []
    for event in events:
        details = event.get("taskScheduledEventDetails") or {}
        if details.get("resourceType") == "lambda" and "TeardownWorker" in details.get("parameters", ""):
            payload = json.loads(details["parameters"])["Payload"]
            batches.append([c["connectionId"]["S"] for c in payload["connections"]])
    return batches


def lambda_outcomes(events: list[dict]) -> list[str]:
    return [e["type"] for e in events if e["type"] in ("TaskSucceeded", "TaskFailed", "TaskTimedOut")
            and (e.get("taskSucceededEventDetails") or e.get("taskFailedEventDetails")
                 or e.get("taskTimedOutEventDetails") or {}).get("resourceType") == "lambda"]


def inject_post_faults(stack: LocalStackHandle, connection_id: str, count: int) -> None:
    """The local Management API's test hook: the next `count` posts to the connection answer 500."""
    r = httpx.post(f"{stack['managementApiUrl']}/@faults/{quote(connection_id, safe='')}", params={"count": count})
    assert r.status_code == 204, r.text


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


# Each session's join key: its anonymous listeners carry it, as the session's link does.
JOIN_KEYS: dict[str, str] = {}


def new_session(http: httpx.Client, stack: LocalStackHandle) -> dict:
    r = http.post("/sessions", headers=stack.auth(), json={"sourceLanguage": "en"})
    assert r.status_code == 201, r.text
    JOIN_KEYS[r.json()["sessionId"]] = r.json()["joinKey"]
    return r.json()


def delete(http: httpx.Client, stack: LocalStackHandle, session_id: str) -> int:
    return http.delete(f"/sessions/{session_id}", headers=stack.auth()).status_code


# ----------------------------------------------------------------------------- tests


def test_delete_tells_a_speaker_and_200_listeners_and_closes_every_socket(stack, http):
    session = new_session(http, stack)
    session_id = session["sessionId"]

    async def scenario():
        sockets = await open_session_sockets(stack, session_id, LISTENERS)
        readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
        count = (await asyncio.to_thread(http.get, f"/sessions/{session_id}", headers=stack.auth())).json()
        assert count["listenerCount"] == LISTENERS
        assert await asyncio.to_thread(delete, http, stack, session_id) == 204
        return await goodbyes(sockets, readers)

    results = run(scenario())
    assert len(results) == LISTENERS + 1
    assert_told_then_closed(results, session_id)
    events = assert_torn_down(stack, http, session)
    # 201 connections in batches of 50 (a batch retried on a slow machine is the same batch).
    batches = {tuple(batch) for batch in worker_inputs(events)}
    assert sorted(len(batch) for batch in batches) == [1, 50, 50, 50, 50]
    assert len({c for batch in batches for c in batch}) == LISTENERS + 1


def test_connections_already_gone_do_not_fail_the_teardown(stack, http):
    """Records of sockets that are gone (the Management API answers 410) are dropped like the others.

    The fake records are written together with the end of the session (listenerCount kept equal to the
    listener records), so no status broadcast runs first and finds them gone; the DELETE then starts
    the teardown, as a repeated DELETE of an ended session does."""
    session = new_session(http, stack)
    session_id = session["sessionId"]
    fakes = [f"goneFake{n:04d}xx=" for n in range(5)]

    async def scenario():
        sockets = await open_session_sockets(stack, session_id, 3)
        # The joins' status broadcast must be over before the fakes exist: one still to run would post to
        # them, meet the 410s and drop them before the teardown does.
        await asyncio.gather(*(status_seen(ws, listener_count=3) for ws in sockets))
        readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
        now = int(time.time())
        table = stack["tableName"]
        await asyncio.to_thread(stack.aws("dynamodb").transact_write_items, TransactItems=[
            *({"Put": {"TableName": table, "Item": {
                "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{fake}"},
                "connectionId": {"S": fake}, "sessionId": {"S": session_id}, "role": {"S": "listener"},
                "userId": {"S": ""}, "targetLanguage": {"S": ""}, "connectedAt": {"N": str(now)},
                "expiresAt": {"N": str(now + 3600)}}}} for fake in fakes),
            {"Update": {"TableName": table, "Key": {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}},
                        "UpdateExpression": "SET #status = :ended, endedAt = :now, updatedAt = :now "
                                            "ADD listenerCount :fakes, version :one",
                        "ConditionExpression": "listenerCount = :three",
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": {":ended": {"S": "ended"}, ":now": {"N": str(now)},
                                                      ":fakes": {"N": str(len(fakes))}, ":one": {"N": "1"},
                                                      ":three": {"N": "3"}}}},
        ])
        assert len(await asyncio.to_thread(connection_items, stack, session_id)) == 4 + len(fakes)
        assert await asyncio.to_thread(delete, http, stack, session_id) == 204
        return await goodbyes(sockets, readers)

    results = run(scenario())
    assert_told_then_closed(results, session_id)
    events = assert_torn_down(stack, http, session)
    assert set(fakes) <= {c for b in worker_inputs(events) for c in b}  # the teardown did meet them
    gone_failures = [e for e in events if e["type"] == "TaskFailed"
                     and "Gone" in json.dumps(e.get("taskFailedEventDetails", {}))]
    assert gone_failures == []


def test_deleting_twice_starts_one_teardown(stack, http):
    session = new_session(http, stack)
    session_id = session["sessionId"]

    def delete_with_own_client() -> int:
        with httpx.Client(base_url=stack.url, timeout=30) as client:
            return delete(client, stack, session_id)

    async def scenario():
        sockets = await open_session_sockets(stack, session_id, 2)
        readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
        statuses = await asyncio.gather(asyncio.to_thread(delete_with_own_client),
                                        asyncio.to_thread(delete_with_own_client))
        assert statuses == [204, 204]
        return await goodbyes(sockets, readers)

    results = run(scenario())
    assert_told_then_closed(results, session_id)
    assert_torn_down(stack, http, session)
    assert delete(http, stack, session_id) == 204  # once more, after the teardown finished
    assert len(executions(stack, session_id)) == 1


def test_a_failing_worker_batch_is_retried_and_the_teardown_still_succeeds(stack, http):
    """The posts to one listener answer 500 (beyond botocore's own retries) until the execution has
    recorded a failed worker task; released, the retried batch reaches it."""
    session = new_session(http, stack)
    session_id = session["sessionId"]

    async def scenario():
        sockets = await open_session_sockets(stack, session_id, 4)
        readers = [asyncio.create_task(until_closed(ws)) for ws in sockets]
        listener = next(i["connectionId"]["S"] for i in await asyncio.to_thread(connection_items, stack, session_id)
                        if i["role"]["S"] == "listener")
        await asyncio.to_thread(inject_post_faults, stack, listener, 1000)
        try:
            assert await asyncio.to_thread(delete, http, stack, session_id) == 204

            def failed_once():
                found = executions(stack, session_id)
                return found and "TaskFailed" in lambda_outcomes(history(stack, found[0]["executionArn"]))
            await asyncio.to_thread(eventually, failed_once, EXECUTION_WAIT, "a failed worker task")
            # The failed attempt told and closed the others; only the faulty connection is left.
            open_left = await asyncio.to_thread(
                eventually, lambda: sum(not r.done() for r in readers) == 1 and 1, 10, "one socket left open")
            assert open_left == 1
        finally:
            await asyncio.to_thread(inject_post_faults, stack, listener, 0)
        return await goodbyes(sockets, readers, timeout=EXECUTION_WAIT)

    results = run(scenario())
    assert_told_then_closed(results, session_id)  # the retry told nobody twice
    events = assert_torn_down(stack, http, session)
    outcomes = lambda_outcomes(events)
    assert outcomes[-2:] == ["TaskSucceeded", "TaskSucceeded"]  # the retried batch, then Finish
    assert "TaskFailed" in outcomes[:-2]
    failure = next(e["taskFailedEventDetails"] for e in events if e["type"] == "TaskFailed")
    assert failure["error"] == "ClientError"  # the worker's own error, after botocore's retries
    assert "InternalServerErrorException" in failure["cause"] and "PostToConnection" in failure["cause"]
    assert len(worker_inputs(events)) >= 2 and len({tuple(b) for b in worker_inputs(events)}) == 1


def test_a_listener_still_connecting_when_the_teardown_runs_is_told_and_closed(stack, http):
    """API Gateway answers a post with 410 until $connect has returned: the @faults/$connect hook holds the
    handshake open after $connect recorded the listener, and the session is deleted in that window."""
    session = new_session(http, stack)
    session_id = session["sessionId"]

    async def scenario():
        held = httpx.post(f"{stack['managementApiUrl']}/@faults/$connect", params={"delayMs": 8000, "count": 1})
        assert held.status_code == 204
        opening = asyncio.create_task(open_ws(stack, sessionId=session_id, role="listener",
                                              joinKey=JOIN_KEYS[session_id]))
        await asyncio.to_thread(eventually, lambda: len(connection_items(stack, session_id)) == 1, 20,
                                "the listener's record written by $connect")
        assert await asyncio.to_thread(delete, http, stack, session_id) == 204
        ws = await opening
        return await goodbyes([ws], [asyncio.create_task(until_closed(ws))])

    assert_told_then_closed(run(scenario()), session_id)
    assert_torn_down(stack, http, session)
