"""Listener counts heal from the connection records, and sessions nobody ended are torn down, under the local
stack's switches for what AWS does and the stack otherwise would not: a write applied but answered 500 (botocore
sends it again), a function killed between two writes, a lost $disconnect (local_stack/README.md, "How close to AWS")."""

from __future__ import annotations

import asyncio
import json
import time

import boto3
import httpx
import pytest

from tests.e2e.test_teardown import (
    assert_told_then_closed,
    connection_items,
    goodbyes,
    open_ws,
    run,
    session_item,
    until_closed,
)

pytestmark = pytest.mark.local_only("switches the local stack's faults and invokes the sweep directly")

SWEEP = "local-SessionSweepFunction"  # the stack's name, then the logical ID


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def new_session(http, stack) -> str:
    # Public: these listeners join by the ID alone (anonymous joins to a link session need its key).
    r = http.post("/sessions", headers=stack.auth(), json={"sourceLanguage": "en", "access": "public"})
    assert r.status_code == 201, r.text
    return r.json()["sessionId"]


def fault(stack, operation: str, count: int, mode: str) -> None:
    # Aimed at $connect: the stream consumer and the sweep make UpdateItem calls of their own meanwhile.
    r = httpx.post(f"{stack['functionsEndpointUrl']}/@faults", json={"operation": operation, "count": count,
                                                                    "mode": mode, "function": "WsConnectFunction"})
    assert r.status_code == 204, r.text


def lose_disconnects(stack, count: int) -> None:
    assert httpx.post(f"{stack['managementApiUrl']}/@faults/$disconnect", params={"count": count}).status_code == 204


def sweep(stack) -> float:
    """Runs the minute's sweep now (the local stack runs no EventBridge schedule); its duration in seconds."""
    client = boto3.client("lambda", endpoint_url=stack["functionsEndpointUrl"], region_name=stack["region"],
                          aws_access_key_id="local", aws_secret_access_key="local")
    started = time.monotonic()
    answer = client.invoke(FunctionName=SWEEP, Payload=json.dumps({"source": "aws.events"}).encode())
    assert "FunctionError" not in answer, answer["Payload"].read()
    return time.monotonic() - started


def age_records(stack, session_id: str, seconds: int = 60) -> None:
    """As if the records were written a minute ago: past the 30 s in which a socket may still be opening."""
    ddb = stack.aws("dynamodb")
    for item in connection_items(stack, session_id):
        ddb.update_item(TableName=stack["tableName"], Key={"pk": item["pk"], "sk": item["sk"]},
                        UpdateExpression="SET connectedAt = :then",
                        ExpressionAttributeValues={":then": {"N": str(int(time.time()) - seconds)}})


def counts(stack, session_id: str) -> tuple[int, int]:
    """(listenerCount, listener records)."""
    records = [i for i in connection_items(stack, session_id) if i["role"]["S"] == "listener"]
    return int(session_item(stack, session_id)["listenerCount"]["N"]), len(records)


def test_a_drifted_count_heals_from_the_records_at_the_next_sweep(stack, http):
    session_id = new_session(http, stack)

    async def scenario():
        sockets = []
        for _ in range(4):  # each join's ADD applied, answered 500, sent again by botocore
            fault(stack, "UpdateItem", 1, "applied")
            sockets.append(await open_ws(stack, sessionId=session_id, role="listener"))
        fault(stack, "UpdateItem", 0, "applied")
        for _ in range(2):  # $connect killed between its record and its count: a failed handshake
            fault(stack, "UpdateItem", 1, "kill")
            with pytest.raises(Exception):
                await open_ws(stack, sessionId=session_id, role="listener")
            await asyncio.sleep(1.1)  # the killed invocation's second is over
        more = [await open_ws(stack, sessionId=session_id, role="listener") for _ in range(4)]
        lose_disconnects(stack, 3)
        for ws in more[:3]:
            await ws.close()
        alive = sockets + more[3:]
        try:
            await asyncio.sleep(0.5)  # the gateway's own $disconnect of the one close that kept it
            before = await asyncio.to_thread(counts, stack, session_id)
            await asyncio.to_thread(age_records, stack, session_id)
            took = await asyncio.to_thread(sweep, stack)
            after = await asyncio.to_thread(counts, stack, session_id)
        finally:
            await asyncio.gather(*(ws.close() for ws in alive))
        return len(alive), before, after, took

    alive, before, after, took = run(scenario())
    print(f"\nlive sockets {alive}; before the sweep (count, records) = {before}; after = {after}; sweep {took:.2f} s")
    assert before[0] != alive and before[1] != alive
    assert after == (alive, alive)


def test_an_expired_session_is_torn_down_by_the_sweep(stack, http):
    session_id = new_session(http, stack)

    async def scenario():
        ws = await open_ws(stack, sessionId=session_id, role="listener")
        reader = asyncio.create_task(until_closed(ws))
        stack.aws("dynamodb").update_item(  # expired a second ago; TTL has not deleted it (it may take days)
            TableName=stack["tableName"], Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}},
            UpdateExpression="SET expiresAt = :past", ExpressionAttributeValues={":past": {"N": str(int(time.time()) - 1)}})
        await asyncio.to_thread(sweep, stack)
        return await goodbyes([ws], [reader])

    assert_told_then_closed(run(scenario()), session_id)
    assert session_item(stack, session_id)["status"]["S"] == "ended"
