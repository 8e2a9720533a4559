"""Where AWS says no, the local stack says no too, and the service still holds.

- IAM: each function's calls are checked against its own role from template.yaml (as SAM expands it);
- DynamoDB transaction conflicts: concurrent transactions on one item, plain writes into a running one;
- `@connections` answers 410 until `$connect` has returned (a fault hook widens that window on purpose);
- a teardown whose start failed is started again by the owner's repeated DELETE.
"""

from __future__ import annotations

import asyncio
import collections
import json

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.exceptions import InvalidStatus

from local_stack.iam import access_key_for
from tests.e2e.conftest import LocalStackHandle
from tests.e2e.ws_helpers import (
    BROADCAST_WAIT,
    JOIN_KEYS,
    Sockets,
    closed,
    eventually_async,
    get_session,
    heartbeat,
    items,
    new_session,
    of_type,
    open_ws,
    receive,
    run,
)

BURST = 200


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        yield client


def as_function(stack: LocalStackHandle, function: str, service: str, endpoint: str | None = None):
    """A client signing with a function's local credentials, as the function's own code does."""
    return boto3.client(service, endpoint_url=endpoint or stack["functionsEndpointUrl"], region_name=stack["region"],
                        aws_access_key_id=access_key_for(function), aws_secret_access_key="local",
                        aws_session_token="local", config=Config(retries={"max_attempts": 1}))


def inject_aws_fault(stack: LocalStackHandle, operation: str, count: int) -> None:
    r = httpx.post(f"{stack['functionsEndpointUrl']}/@faults", json={"operation": operation, "count": count})
    assert r.status_code == 204, r.text


# ----------------------------------------------------------------------------------------- IAM


@pytest.mark.local_only("signs as a function with the local stack's keys")
def test_a_function_may_not_make_a_call_its_role_does_not_allow(stack, http):
    session_id = new_session(http, stack)["sessionId"]
    key = {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}}
    delete_function = as_function(stack, "DeleteSessionFunction", "dynamodb")
    with pytest.raises(ClientError) as denied:
        delete_function.get_item(TableName=stack["tableName"], Key=key)
    error = denied.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "local-DeleteSessionFunction is not authorized to perform: dynamodb:GetItem" in error["Message"]
    # What the role grants goes through: UpdateItem on the table...
    delete_function.update_item(TableName=stack["tableName"], Key=key, UpdateExpression="SET qualityTier = :t",
                                ExpressionAttributeValues={":t": {"S": "premium"}})
    assert get_session(http, stack, session_id)["qualityTier"] == "premium"
    # ...but not on another resource, nor through a transaction of actions it lacks.
    with pytest.raises(ClientError, match="AccessDenied"):
        delete_function.update_item(TableName="another-table", Key=key, UpdateExpression="SET a = :a",
                                    ExpressionAttributeValues={":a": {"S": "x"}})
    with pytest.raises(ClientError, match="dynamodb:PutItem"):
        delete_function.transact_write_items(TransactItems=[
            {"Update": {"TableName": stack["tableName"], "Key": key, "UpdateExpression": "SET a = :a",
                        "ExpressionAttributeValues": {":a": {"S": "x"}}}},
            {"Put": {"TableName": stack["tableName"], "Item": {"pk": {"S": "x"}, "sk": {"S": "y"}}}}])
    with pytest.raises(ClientError, match="AccessDenied"):
        as_function(stack, "GetSessionFunction", "kinesis").put_record(
            StreamName=stack["audioStreamName"], PartitionKey=session_id, Data=b"{}")


@pytest.mark.local_only("signs as a function with the local stack's keys")
def test_a_function_without_manage_connections_may_not_post_to_a_socket(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            connection_id = (await asyncio.to_thread(items, stack, session_id, "CONN#"))[0]["connectionId"]["S"]

            def post(function: str):
                client = as_function(stack, function, "apigatewaymanagementapi", stack["managementApiUrl"])
                return client.post_to_connection(ConnectionId=connection_id, Data=b'{"type": "hello"}')

            with pytest.raises(ClientError) as denied:
                await asyncio.to_thread(post, "GetSessionFunction")
            assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
            await asyncio.to_thread(post, "TeardownWorkerFunction")
            assert await receive(listener, of_type("hello"))

    run(scenario())


# ---------------------------------------------------------------- a teardown that failed to start


@pytest.mark.local_only("injects a fault into the local AWS endpoint")
@pytest.mark.parametrize("retry", ["DELETE", "PATCH"])
def test_a_repeated_end_restarts_a_teardown_that_failed_to_start(stack, http, retry):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            inject_aws_fault(stack, "StartExecution", 10)
            try:
                first = await asyncio.to_thread(http.delete, f"/sessions/{session_id}", headers=stack.auth())
            finally:
                inject_aws_fault(stack, "StartExecution", 0)
            assert first.status_code == 503, first.text  # ended, but its sockets are not being closed
            await heartbeat(listener)
            if retry == "DELETE":
                again = await asyncio.to_thread(http.delete, f"/sessions/{session_id}", headers=stack.auth())
                assert again.status_code == 204, again.text
            else:  # the session stays ended (409), and its teardown starts
                again = await asyncio.to_thread(http.patch, f"/sessions/{session_id}", headers=stack.auth(),
                                                json={"status": "ended"})
                assert again.status_code == 409 and again.json()["error"]["code"] == "SESSION_ENDED", again.text
            _, messages = await closed(listener, timeout=30)
            assert any(m.get("type") == "sessionEnded" for m in messages), messages

    run(scenario())


# ----------------------------------------------------------------- a crowd joining one session


def test_a_crowd_joining_one_session_at_once_all_connect_and_are_counted(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def attempt():
        try:
            return await open_ws(stack, sessionId=session_id, role="listener", joinKey=JOIN_KEYS[session_id])
        except InvalidStatus as exc:
            return exc.response.status_code

    async def scenario():
        outcomes = await asyncio.gather(*(attempt() for _ in range(BURST)))
        sockets = [o for o in outcomes if not isinstance(o, int)]
        joined = {"refused": dict(collections.Counter(o for o in outcomes if isinstance(o, int))),
                  "listenerCount": get_session(http, stack, session_id)["listenerCount"],
                  "records": len(await asyncio.to_thread(items, stack, session_id, "CONN#"))}
        for ws in sockets:
            ws.transport.abort()  # every listener drops at once, without a close frame
        try:
            await eventually_async(lambda: get_session(http, stack, session_id)["listenerCount"] == 0, timeout=60)
        except AssertionError:
            pass  # reported below, with the rest
        left = {"listenerCount": get_session(http, stack, session_id)["listenerCount"],
                "records": len(await asyncio.to_thread(items, stack, session_id, "CONN#"))}
        assert (joined, left) == ({"refused": {}, "listenerCount": BURST, "records": BURST},
                                  {"listenerCount": 0, "records": 0})

    run(scenario(), timeout=240)


# ------------------------------------------------------- a join racing its own status broadcast


@pytest.mark.local_only("holds $connect with the local gateway's fault hook")
def test_a_listener_whose_join_raced_its_own_status_broadcast_is_still_closed_at_teardown(stack, http):
    session_id = new_session(http, stack)["sessionId"]
    delay = httpx.post(f"{stack['managementApiUrl']}/@faults/$connect", params={"delayMs": 3000, "count": 1})
    assert delay.status_code == 204

    async def scenario():
        async with Sockets(stack) as sockets:
            # The join's write reaches the status broadcast while the handshake is held after $connect:
            # the post to the new connection answers 410, as AWS answers it before $connect has returned.
            listener = await sockets.listener(session_id)
            await eventually_async(lambda: any(line.get("message") == "status broadcast"
                                               and line.get("sessionId") == session_id
                                               for line in stack.log_lines("StatusBroadcastFunction")),
                                   timeout=BROADCAST_WAIT, what="the join's status broadcast")
            await heartbeat(listener)
            assert get_session(http, stack, session_id)["listenerCount"] == 1
            assert len(await asyncio.to_thread(items, stack, session_id, "CONN#")) == 1
            assert (await asyncio.to_thread(http.delete, f"/sessions/{session_id}",
                                            headers=stack.auth())).status_code == 204
            _, messages = await closed(listener, timeout=30)
            assert any(m.get("type") == "sessionEnded" for m in messages), messages

    run(scenario())


@pytest.mark.local_only("the local stack's own switches")
def test_transaction_conflicts_are_on_in_the_stack_under_test(stack):
    # The rules above are only proven where they are in force.
    assert stack["strict"] == {"iam": True, "transactionConflicts": True}


# ------------------------------------------------------------------ API Gateway's request limits


def _headers_of_size(total: int, token_char: str = "B") -> dict:
    """An Authorization header and a filler whose values, with the request line, come to `total` bytes."""
    return {"Authorization": "Bearer " + token_char * 4000, "X-Filler": "f" * (total - 4007)}


@pytest.mark.local_only("AWS documents this limit, not the status it answers")
@pytest.mark.parametrize("extra, status", [(0, 401), (1, 431)])
def test_the_http_api_takes_10240_bytes_of_request_line_and_header_values(stack, extra, status):
    path = "/dev/sessions/golden-eagle-427"
    with httpx.Client(timeout=30) as client:
        request = client.build_request("GET", f"http://{httpx.URL(stack.url).netloc.decode()}{path}")
        line = len(f"GET {path} HTTP/1.1")
        fixed = sum(len(v) for k, v in request.headers.items())  # Host, Accept, ... as httpx sends them
        budget = 10_240 - line - fixed
        request.headers.update(_headers_of_size(budget + extra))
        response = client.send(request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert "BBBB" not in response.text and "ffff" not in response.text


@pytest.mark.local_only("AWS documents this limit, not the status it answers")
def test_a_header_too_long_to_parse_is_refused_without_echoing_it(stack):
    response = httpx.get(f"{stack.url}/sessions/golden-eagle-427", headers={"Authorization": "Bearer " + "S" * 70_000})
    assert response.status_code == 431
    assert response.json() == {"message": "Request Header Fields Too Large"}


@pytest.mark.local_only("AWS documents this limit, not the status it answers")
def test_a_websocket_url_over_4096_characters_is_refused(stack):
    async def scenario():
        statuses = []
        for padding in (0, 4096):
            try:
                ws = await open_ws(stack, sessionId="golden-eagle-427", role="listener", pad="p" * padding)
            except InvalidStatus as exc:
                statuses.append((exc.response.status_code, exc.response.body))
            else:
                await ws.close()
                statuses.append((101, b""))
        return statuses

    (short_status, _), (long_status, body) = run(scenario())
    assert short_status == 403  # a real refusal: no such session
    assert long_status == 414 and b"ppp" not in body and json.loads(body) == {"message": "Request-URI Too Long"}
