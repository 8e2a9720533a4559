"""What the WebSocket end-to-end tests share (test_ws_*.py, and the other end-to-end files that drive sockets):
real WebSocket connections (websockets) to the local stack's API Gateway emulation (the Lambda authorizer and
$connect at the handshake, route selection on $request.body.action, route responses, the @connections Management
API), the real handlers, moto's DynamoDB and Kinesis, and the table's stream feeding StatusBroadcastFunction; HTTP
(httpx) where the contract mixes both. The `http` fixture is in conftest.py.

Nothing sleeps for timing: every wait is a bounded poll or a bounded receive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Self
from urllib.parse import urlencode

import httpx
import jwt
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.e2e.conftest import LocalStackHandle

BROADCAST_WAIT = 10.0  # the stream poller batches up to 1 s; a loaded 2-core machine needs slack
REPLY_WAIT = 10.0
ERROR_KEYS = {"type", "code", "message", "requestId"}


def run(coroutine: Awaitable, timeout: float = 120.0):
    """Runs one test's asyncio scenario, bounded as a whole."""
    async def bounded():
        return await asyncio.wait_for(coroutine, timeout)
    return asyncio.run(bounded())


def ws_url(stack: LocalStackHandle, **params: str) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{stack['webSocketUrl']}?{query}" if query else stack["webSocketUrl"]


async def open_ws(stack: LocalStackHandle, headers: dict | None = None, **params: str) -> ClientConnection:
    # No client pings: a busy stack answering a ping late must not close the socket under test.
    return await connect(ws_url(stack, **params), additional_headers=headers, open_timeout=30,
                         close_timeout=5, ping_interval=None, max_size=None)


class Sockets:
    """Opens sockets; closes whatever is still open when the scenario ends."""

    def __init__(self, stack: LocalStackHandle) -> None:
        self.stack = stack
        self.opened: list[ClientConnection] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await asyncio.gather(*(ws.close() for ws in self.opened), return_exceptions=True)

    async def open(self, headers: dict | None = None, **params: str) -> ClientConnection:
        ws = await open_ws(self.stack, headers, **params)
        self.opened.append(ws)
        return ws

    async def speaker(self, session_id: str, user: str = "alice") -> ClientConnection:
        return await self.open(sessionId=session_id, role="speaker", token=self.stack.token(user))

    async def listener(self, session_id: str, token: str | None = None, **params: str) -> ClientConnection:
        """A listener; an anonymous one carries the session's key, as its link does."""
        if token is None:
            params.setdefault("joinKey", JOIN_KEYS.get(session_id))
        return await self.open(sessionId=session_id, role="listener", token=token, **params)

    async def listeners(self, session_id: str, count: int, batch: int = 15, **params: str) -> list[ClientConnection]:
        """`count` listeners, opened concurrently a batch at a time (gentle on two cores)."""
        sockets: list[ClientConnection] = []
        for start in range(0, count, batch):
            sockets += await asyncio.gather(*(self.listener(session_id, **params)
                                              for _ in range(min(batch, count - start))))
        return sockets


async def refused(stack: LocalStackHandle, headers: dict | None = None, **params: str) -> int:
    """The HTTP status of a handshake that must fail."""
    try:
        ws = await open_ws(stack, headers, **params)
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    raise AssertionError(f"the handshake was accepted: {params}")


# Messages a socket received while the test waited for another one, oldest first: a status broadcast
# that arrives while we wait for a heartbeatAck is still there for the next receive() that wants it.
_unread: weakref.WeakKeyDictionary[ClientConnection, list[dict]] = weakref.WeakKeyDictionary()


async def receive(ws: ClientConnection, match: Callable[[dict], bool], timeout: float = REPLY_WAIT,
                  only_new: bool = False) -> dict:
    """The oldest message `match` accepts, already received (unless `only_new`) or still to come,
    leaving the others unread."""
    unread = _unread.setdefault(ws, [])
    for index, message in enumerate(unread):
        if match(message) and not only_new:
            return unread.pop(index)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        try:
            message = json.loads(await asyncio.wait_for(ws.recv(), max(left, 0.001)))
        except TimeoutError:
            raise AssertionError(f"no matching message within {timeout} s; unread: {unread}") from None
        except ConnectionClosed as exc:
            raise AssertionError(f"closed ({exc.rcvd}) before a matching message; unread: {unread}") from None
        if match(message):
            return message
        unread.append(message)


def of_type(kind: str, **fields) -> Callable[[dict], bool]:
    return lambda m: m.get("type") == kind and all(m.get(k) == v for k, v in fields.items())


async def ask(ws: ClientConnection, message: dict | str, match: Callable[[dict], bool],
              timeout: float = REPLY_WAIT) -> dict:
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return await receive(ws, match, timeout, only_new=True)  # a reply, not something received before


async def error_for(ws: ClientConnection, message: dict | str) -> str:
    reply = await ask(ws, message, of_type("error"))
    assert set(reply) == ERROR_KEYS and reply["requestId"], reply
    return reply["code"]


async def heartbeat(ws: ClientConnection) -> dict:
    """Also a barrier: the local stack handles a connection's messages one at a time, in order."""
    return await ask(ws, {"action": "heartbeat"}, of_type("heartbeatAck"))


async def closed(ws: ClientConnection, timeout: float = REPLY_WAIT) -> tuple[int | None, list[dict]]:
    """Waits for the server to close the socket: (close code, messages received meanwhile)."""
    messages = _unread.pop(ws, [])

    async def drain():
        try:
            async for frame in ws:
                messages.append(json.loads(frame))
        except ConnectionClosed:
            pass
    await asyncio.wait_for(drain(), timeout)
    return ws.close_code, messages


def audio(seq: int, payload: bytes | None = None) -> dict:
    return {"action": "sendAudio", "seq": seq, "data": base64.b64encode(payload or f"chunk-{seq}".encode()).decode()}


async def eventually_async(check: Callable[[], object], timeout: float = 10.0, interval: float = 0.2,
                           what: str = ""):
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        await asyncio.sleep(interval)


def items(stack: LocalStackHandle, session_id: str, prefix: str) -> list[dict]:
    pages = stack.aws("dynamodb").get_paginator("query").paginate(
        TableName=stack["tableName"], ConsistentRead=True,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":prefix": {"S": prefix}})
    return [item for page in pages for item in page["Items"]]


def session_item(stack: LocalStackHandle, session_id: str) -> dict:
    return stack.aws("dynamodb").get_item(TableName=stack["tableName"], ConsistentRead=True, Key={
        "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}})["Item"]


def seqs(stack: LocalStackHandle, session_id: str) -> list[int]:
    return [record["seq"] for record in stack.audio_records(session_id)]


def refusal_reasons(stack: LocalStackHandle) -> list[str]:
    """The reasons logged for refused handshakes, one per refusal, oldest first: the authorizer's (token,
    role, session ID format, language), or $connect's (the session: missing, ended, full, someone else's)."""
    reasons: dict[str, tuple[str, str]] = {}
    for line in stack.log_lines("WsAuthorizerFunction"):
        if line.get("reason") and line.get("message") in ("connection refused", "request"):
            reasons.setdefault(line.get("function_request_id", ""), (line["timestamp"], line["reason"]))
    for line in stack.log_lines("WsConnectFunction"):
        if line.get("message") == "request" and line.get("outcome") not in (None, "ok"):
            reasons.setdefault(line.get("function_request_id", ""), (line["timestamp"], line["outcome"]))
    return [reason for _, reason in sorted(reasons.values())]


def sub_of(stack: LocalStackHandle, user: str) -> str:
    return jwt.decode(stack.token(user), options={"verify_signature": False})["sub"]


# Each link session's join key, as its owner's listener link carries it: an anonymous listener opened by
# Sockets.listener (and open_ws) of a session new_session made joins with it.
JOIN_KEYS: dict[str, str] = {}


def new_session(client: httpx.Client, stack: LocalStackHandle, user: str = "alice", **body) -> dict:
    r = client.post("/sessions", headers=stack.auth(user), json={"sourceLanguage": "en", **body})
    if r.status_code == 201 and "joinKey" in r.json():
        JOIN_KEYS[r.json()["sessionId"]] = r.json()["joinKey"]
    assert r.status_code == 201, r.text
    return r.json()


def get_session(client: httpx.Client, stack: LocalStackHandle, session_id: str) -> dict:
    r = client.get(f"/sessions/{session_id}", headers=stack.auth())
    assert r.status_code == 200, r.text
    return r.json()


# The old clients' own vocabulary (docs/protocols.md): test_ws_legacy.py, and switched off in
# test_ws_template_parameters.py.
OLD_ACTION_FUNCTIONS = {"createSession": "WsCreateSessionFunction", "audioChunk": "WsSendAudioFunction",
                        "pauseBroadcast": "WsSessionControlFunction", "resumeBroadcast": "WsSessionControlFunction"}


def audio_chunk(index: int, session_id: str) -> dict:
    return {"action": "audioChunk", "sessionId": session_id, "chunkIndex": index,
            "audioData": base64.b64encode(f"old-chunk-{index}".encode()).decode()}


def legacy_messages_counted(stack: LocalStackHandle) -> dict[str, float]:
    """LegacyProtocolMessage by action on this service's own connections (dialect "native"), summed over the
    EMF records the functions wrote (the published clients' dialects count under their own: docs/protocols.md)."""
    counts = dict.fromkeys(OLD_ACTION_FUNCTIONS, 0.0)
    for function in set(OLD_ACTION_FUNCTIONS.values()):
        for line in stack.log_lines(function):
            if "_aws" in line and "LegacyProtocolMessage" in line:
                (dimensions,) = line["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                assert set(dimensions) == {"stage", "service", "action", "dialect"}, dimensions
                if line["dialect"] != "native":
                    continue
                values = line["LegacyProtocolMessage"]
                counts[line["action"]] += sum(values) if isinstance(values, list) else values
    return counts
