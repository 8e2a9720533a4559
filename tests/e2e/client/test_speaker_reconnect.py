"""The server drops the speaker (API Gateway's DeleteConnection): the client reconnects to the same session and
its audio goes on in order, with no gap after the reconnection."""

from __future__ import annotations

import asyncio
import base64
import functools
import struct
import time

import pytest
from broadcast_client import ConnectionTiming, RetryPolicy, WebSocketClient, start_broadcast

from local_stack.aws import client as _aws_client
from tests.e2e.client.conftest import TIMEOUT

pytestmark = pytest.mark.local_only("the client's --local configuration reads the local stack's stack.json")


FAST_RECONNECT = RetryPolicy(max_retries=10, base_delay=0.2, max_delay=1.0)


@functools.cache
def aws_client(service: str, endpoint: str, region: str):
    return _aws_client(service, endpoint, region)


async def wait_for_seq(stack, session_id: str, seq: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not any(r["seq"] == seq for r in await asyncio.to_thread(stack.audio_records, session_id)):
        assert time.monotonic() < deadline, f"seq {seq} never reached Kinesis"
        await asyncio.sleep(0.05)


def speaker_connections(stack, session_id: str) -> list[str]:
    ddb = stack.aws("dynamodb")
    items = ddb.query(TableName=stack["tableName"], ConsistentRead=True,
                      KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
                      ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":conn": {"S": "CONN#"}})
    return [i["connectionId"]["S"] for i in items["Items"] if i["role"]["S"] == "speaker"]


def drop_connection(stack, connection_id: str) -> None:
    """What API Gateway's DeleteConnection does: the server closes the socket (1001)."""
    management = aws_client("apigatewaymanagementapi", stack["managementApiUrl"], stack["region"])
    management.delete_connection(ConnectionId=connection_id)


def chunk(seq: int, size: int = 640) -> bytes:
    """Distinct audio per seq, so a record with the wrong payload for its seq is caught."""
    return struct.pack(">I", seq) * (size // 4)


def seqs_and_payloads(records: list[dict]) -> tuple[list[int], dict[int, bytes]]:
    """Seqs in order of first appearance; asserts that any duplicate carries the same payload."""
    order: list[int] = []
    payloads: dict[int, bytes] = {}
    for record in records:
        data = base64.b64decode(record["audio"])
        if record["seq"] in payloads:
            assert payloads[record["seq"]] == data, f"seq {record['seq']} arrived twice with different audio"
        else:
            payloads[record["seq"]] = data
            order.append(record["seq"])
    return order, payloads


def test_speaker_reconnects_after_the_server_drops_it_and_no_audio_is_lost(stack, config):
    """DeleteConnection (1001) between two chunks: the client reconnects with the same sessionId,
    audio queued meanwhile follows on the new connection, and Kinesis gets every seq once, in order."""
    total, drop_after, pace = 40, 14, 0.03

    async def scenario() -> tuple[str, int, list[str], list[str]]:
        tokens = config.token_provider()
        async with config.http_service(tokens) as http:
            broadcast = await start_broadcast(http, config.websocket_url, tokens, source_language="en",
                                              timing=ConnectionTiming(reconnect=FAST_RECONNECT))
            live, sid = broadcast.live, broadcast.session_id
            first = await asyncio.to_thread(speaker_connections, stack, sid)
            assert len(first) == 1
            for seq in range(total):
                assert await live.send_audio(chunk(seq)) == range(seq, seq + 1)
                if seq == drop_after:
                    # Everything so far has been forwarded, so nothing is in flight when the socket goes.
                    await live.drain()
                    await wait_for_seq(stack, sid, seq)
                    await asyncio.to_thread(drop_connection, stack, first[0])
                    deadline = time.monotonic() + TIMEOUT
                    while live.connected and live.connections == 1:  # until the client saw the close
                        assert time.monotonic() < deadline, "the client never noticed the drop"
                        await asyncio.sleep(0.005)
                await asyncio.sleep(pace)  # the next chunks queue while the client reconnects
            await live.drain()
            # The stack forwards in order; wait for the last chunk before ending, so this test is not
            # also exposed to end()'s close-then-DELETE race with audio the gateway has not routed yet.
            await wait_for_seq(stack, sid, total - 1)
            connections = live.connections
            deadline = time.monotonic() + TIMEOUT
            while (second := await asyncio.to_thread(speaker_connections, stack, sid)) in ([], first) \
                    or len(second) > 1:  # the old socket's $disconnect runs in the background
                assert time.monotonic() < deadline, second
                await asyncio.sleep(0.05)
            await broadcast.end()  # drain, close, DELETE
            assert (await http.get_session(sid)).status == "ended"
            return sid, connections, first, second

    sid, connections, first, second = asyncio.run(scenario())
    assert connections == 2
    assert len(second) == 1 and second != first  # a new connection replaced the dropped one
    order, payloads = seqs_and_payloads(stack.audio_records(sid))
    assert order == list(range(total))
    assert all(payloads[seq] == chunk(seq) for seq in order)
    assert len(stack.audio_records(sid)) == total  # no duplicate either: no send failed


def test_a_drop_racing_the_audio_keeps_order_and_resumes_without_a_gap(stack, config):
    """DeleteConnection while chunks are still coming in (10 ms apart, faster than the stack forwards
    them). What the client guarantees (client/README.md, "Live connection behaviour"): no reordering,
    duplicates only as identical repeats, and nothing missing after the reconnection. Chunks that the
    socket accepted but the gateway had not yet routed when it closed can be lost (no audio acks):
    at most one contiguous run just before the drop."""
    total, drop_at, pace = 60, 20, 0.01

    async def scenario() -> tuple[str, int, int, int]:
        tokens = config.token_provider()
        async with config.http_service(tokens) as http:
            session = await http.create_session("en")
            sid = session.session_id
            async with WebSocketClient(config.websocket_url, sid, role="speaker", token_provider=tokens,
                                       timing=ConnectionTiming(reconnect=FAST_RECONNECT)) as live:
                connection = (await asyncio.to_thread(speaker_connections, stack, sid))[0]
                aws_client("apigatewaymanagementapi", stack["managementApiUrl"], stack["region"])  # warm

                async def speak() -> None:
                    for seq in range(total):
                        await live.send_audio(chunk(seq))
                        await asyncio.sleep(pace)

                speaker = asyncio.create_task(speak())
                while live.next_seq < drop_at:
                    await asyncio.sleep(0.001)
                dropped_at = live.next_seq
                await asyncio.to_thread(drop_connection, stack, connection)
                await speaker
                await asyncio.wait_for(live.drain(), TIMEOUT)
                await wait_for_seq(stack, sid, total - 1)  # everything after the gap arrives (see above)
                connections = live.connections
            await http.delete_session(sid)
            return sid, dropped_at, connections, total

    sid, dropped_at, connections, total = asyncio.run(scenario())
    assert connections == 2
    order, payloads = seqs_and_payloads(stack.audio_records(sid))
    assert all(payloads[seq] == chunk(seq) for seq in order)
    assert order == sorted(order), f"reordered: {order}"
    missing = sorted(set(range(total)) - set(order))
    if missing:  # one contiguous run, sent before the client could have seen the close
        assert missing == list(range(missing[0], missing[-1] + 1)), missing
        assert missing[0] <= dropped_at + 10, (missing, dropped_at)
    assert order[-1] == total - 1 and set(range(missing[-1] + 1 if missing else 0, total)) <= set(order)
