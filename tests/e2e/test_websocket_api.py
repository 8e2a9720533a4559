"""The WebSocket API end to end: real WebSocket connections (websockets) to the local stack's API Gateway
emulation (the Lambda authorizer and $connect at the handshake, route selection on $request.body.action,
route responses, the @connections Management API), the real handlers, moto's DynamoDB and Kinesis, and
the table's stream feeding StatusBroadcastFunction; HTTP (httpx) where the contract mixes both.

One rule per test. Rules that need other template parameters (a listener cap of 3, legacy creation
disabled, no anonymous listeners, 2 KB audio chunks) run against a second stack started for this module.
Nothing sleeps for timing: every wait is a bounded poll or a bounded receive.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Self
from urllib.parse import quote, urlencode

import httpx
import jwt
import pytest
from session_core.session_ids import is_valid_session_id
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local_stack.launcher import STARTUP_TIMEOUT, running_stack
from tests.e2e.conftest import DEPLOYED_STACK, SUITE_SESSION_CAP, LocalStackHandle, eventually

BROADCAST_WAIT = 10.0  # the stream poller batches up to 1 s; a loaded 2-core machine needs slack
REPLY_WAIT = 10.0
ERROR_KEYS = {"type", "code", "message", "requestId"}


# --------------------------------------------------------------------------- helpers


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


FRAME_BYTES = 32 * 1024  # API Gateway's largest frame: a longer message goes in several
DEFAULT_MAX_AUDIO_BYTES = 24000  # the template's MaxAudioBytes default: one frame's worth


def frames(message: dict) -> list[str]:
    """The message as frames of at most FRAME_BYTES (ASCII JSON: a character is a byte)."""
    text = json.dumps(message)
    return [text[i:i + FRAME_BYTES] for i in range(0, len(text), FRAME_BYTES)]


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


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


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


@pytest.fixture(scope="module")
def ended_session(http, stack):
    session = new_session(http, stack)
    assert http.delete(f"/sessions/{session['sessionId']}", headers=stack.auth()).status_code == 204
    return session


# ------------------------------------------------------------------ tokens for 401s

def _moto_signing_key():
    """The key moto's Cognito signs every token with: a token signed with it differs from a real one only
    in the claims we change, so an expired or foreign token is refused for exactly that reason."""
    from moto.utilities.utils import load_resource
    return jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(load_resource("cognitoidp/resources/jwks-private.json")))


def _resigned(stack: LocalStackHandle, **changes) -> str:
    claims = {**jwt.decode(stack.token("alice"), options={"verify_signature": False}), **changes}
    return jwt.encode(claims, _moto_signing_key(), algorithm="RS256", headers={"kid": "dummy"})


def _tampered(token: str) -> str:
    header, payload, signature = token.split(".")
    return f"{header}.{payload}.{signature[:-6]}{'AAAAAA' if signature[-6:] != 'AAAAAA' else 'BBBBBB'}"


def _foreign_key_token(stack: LocalStackHandle) -> str:
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = jwt.decode(stack.token("alice"), options={"verify_signature": False})
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "dummy"})


BAD_TOKENS = {
    "missing": lambda stack: None,
    "garbage": lambda stack: "a.b.c",
    "tampered-signature": lambda stack: _tampered(stack.token("alice")),
    "signed-by-another-key": _foreign_key_token,
    "expired": lambda stack: _resigned(stack, iat=int(time.time()) - 7200, exp=int(time.time()) - 600),
    "other-app-client": lambda stack: _resigned(stack, aud="someone-elses-client"),
    "other-issuer": lambda stack: _resigned(stack, iss="https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_other"),
    "alg-none": lambda stack: jwt.encode(jwt.decode(stack.token("alice"), options={"verify_signature": False}),
                                         None, algorithm="none"),
}


# --------------------------------------------------------------- handshake refusals


# (role, case); anyone may listen to anyone's session, speakers have no target language. No role at all is
# not refused: the session's owner is its speaker, anyone else a listener (test_published_clients.py).
REFUSALS = [
    *(("speaker", case) for case in ("missing-session", "malformed-session-id", "ended-session", "foreign-session")),
    *(("listener", case) for case in ("missing-session", "malformed-session-id", "ended-session",
                                      "unsupported-target-language")),
    ("any", "unknown-connect-action"), ("any", "unknown-role"),
]


@pytest.mark.parametrize(("role", "case"), REFUSALS, ids=[f"{role}-{case}" for role, case in REFUSALS])
@pytest.mark.local_only("reads the refusal reasons from the functions' log files")
def test_a_connection_to_a_session_it_may_not_join_is_refused_with_403(stack, http, ended_session, case, role):
    live = new_session(http, stack)["sessionId"]
    params = {"sessionId": live, "role": role, "token": stack.token("alice")}
    expected_reason = {"missing-session": "SESSION_NOT_FOUND", "malformed-session-id": "INVALID_SESSION_ID",
                       "ended-session": "SESSION_ENDED", "foreign-session": "NOT_SESSION_OWNER",
                       "unknown-connect-action": "UNKNOWN_CONNECT_ACTION", "unknown-role": "INVALID_ROLE",
                       "unsupported-target-language": "UNSUPPORTED_TARGET_LANGUAGE"}[case]
    if case == "missing-session":
        params["sessionId"] = "quiet-otter-999"
    elif case == "malformed-session-id":
        params["sessionId"] = "Not-A-Session"
    elif case == "ended-session":
        params["sessionId"] = ended_session["sessionId"]
    elif case == "foreign-session":
        params["token"] = stack.token("bob")
    elif case == "unknown-connect-action":
        params["action"] = "dance"
    elif case == "unknown-role":
        params["role"] = "admin"
    elif case == "unsupported-target-language":
        params["targetLanguage"] = "xx"

    before = len(refusal_reasons(stack))
    assert run(refused(stack, **params)) == 403
    assert refusal_reasons(stack)[before:] == [expected_reason]  # refused for this reason, logged, not sent
    assert get_session(http, stack, live)["listenerCount"] == 0


# Anonymous listeners are allowed on this stack: a listener without a token is the strict stack's case.
TOKEN_CASES = [(role, token) for role in ("speaker", "listener") for token in BAD_TOKENS
               if (role, token) != ("listener", "missing")]


@pytest.mark.parametrize(("role", "token"), TOKEN_CASES, ids=[f"{role}-{token}" for role, token in TOKEN_CASES])
@pytest.mark.local_only("reads the refusal reasons from the functions' log files")
def test_a_bad_token_is_refused_with_401(stack, http, role, token):
    session_id = new_session(http, stack)["sessionId"]
    before = len(refusal_reasons(stack))
    assert run(refused(stack, sessionId=session_id, role=role, token=BAD_TOKENS[token](stack))) == 401
    assert refusal_reasons(stack)[before:] == ["UNAUTHORIZED"]
    # The same refusal for the token in the Authorization header.
    bad = BAD_TOKENS[token](stack)
    if bad:
        assert run(refused(stack, {"Authorization": f"Bearer {bad}"}, sessionId=session_id, role=role)) == 401


# ------------------------------------------------------------------- who may connect


def test_speakers_and_listeners_connect_and_are_recorded(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            anonymous = await sockets.listener(session_id)
            bob = await sockets.listener(session_id, token=stack.token("bob", access=True), targetLanguage="de")
            by_header = await sockets.open({"Authorization": f"Bearer {stack.token('bob')}"},
                                           sessionId=session_id, role="listener")
            for ws in (speaker, anonymous, bob, by_header):
                assert (await heartbeat(ws))["type"] == "heartbeatAck"
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            records = {item["userId"]["S"]: item for item in items(stack, session_id, "CONN#")}
            assert len(items(stack, session_id, "CONN#")) == 4
            assert records[sub_of(stack, "alice")]["role"]["S"] == "speaker"
            assert records[""]["role"]["S"] == "listener"  # the anonymous one
            bobs = [i for i in items(stack, session_id, "CONN#") if i["userId"]["S"] == sub_of(stack, "bob")]
            assert sorted((i["role"]["S"], i["targetLanguage"]["S"]) for i in bobs) == [
                ("listener", ""), ("listener", "de")]
            assert session_item(stack, session_id)["speakerConnectionId"]["S"] == \
                records[sub_of(stack, "alice")]["connectionId"]["S"]

    run(scenario())


@pytest.mark.parametrize("access", [False, True], ids=["id-token", "access-token"])
def test_a_speaker_may_connect_with_either_token_type_in_the_query_or_the_header(stack, http, access):
    session_id = new_session(http, stack)["sessionId"]
    token = stack.token("alice", access=access)

    async def scenario():
        async with Sockets(stack) as sockets:
            by_query = await sockets.open(sessionId=session_id, role="speaker", token=token)
            assert (await heartbeat(by_query))["type"] == "heartbeatAck"
            by_header = await sockets.open({"Authorization": f"Bearer {token}"}, sessionId=session_id,
                                           role="speaker")
            assert (await heartbeat(by_header))["type"] == "heartbeatAck"

    run(scenario())


# --------------------------------------------------------------------------- audio


def test_audio_reaches_kinesis_complete_and_in_order(stack, http):
    session = new_session(http, stack, sourceLanguage="fr", qualityTier="premium")
    session_id = session["sessionId"]
    chunks = {seq: bytes([seq]) * (100 + seq) for seq in range(25)}

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for seq, payload in chunks.items():
                await speaker.send(json.dumps(audio(seq, payload)))
            await heartbeat(speaker)

    before = int(time.time() * 1000)
    run(scenario())
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len(r) >= len(chunks) and r,
                         what="25 records in Kinesis")
    assert [r["seq"] for r in records] == list(chunks)
    assert [base64.b64decode(r["audio"]) for r in records] == list(chunks.values())
    assert {r["shard"] for r in records} == {records[0]["shard"]}  # one partition key: one shard, one order
    assert {r["partitionKey"] for r in records} == {session_id}
    for record in records:
        assert (record["sourceLanguage"], record["qualityTier"]) == ("fr", "premium")
        assert before - 1000 <= record["receivedAt"] <= record["forwardedAt"] <= int(time.time() * 1000) + 1000
    assert items(stack, session_id, "AUDIO#") == []  # nothing held while active


def test_a_muted_session_drops_audio_and_says_so_and_a_listener_switches_language(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id, targetLanguage="es")
            muted = await ask(speaker, {"action": "mute"}, of_type("status", muted=True))
            assert muted == {"type": "status", "sessionId": session_id, "status": "active", "listenerCount": 1,
                             "listenersByLanguage": {"es": 1}, "speakerConnected": True, "muted": True}
            await receive(listener, of_type("status", muted=True), timeout=BROADCAST_WAIT)
            await speaker.send(json.dumps(audio(0)))
            # The answer, or the broadcast of the same change: without "muted", as for clients that never mute.
            await ask(speaker, {"action": "unmute"}, lambda m: m.get("type") == "status" and "muted" not in m)
            switched = await ask(listener, {"action": "switchLanguage", "targetLanguage": "fr"},
                                 of_type("languageSwitched"))
            assert switched == {"type": "languageSwitched", "sessionId": session_id, "targetLanguage": "fr"}
            assert (await error_for(listener, {"action": "switchLanguage", "targetLanguage": "xx"})) == \
                "UNSUPPORTED_LANGUAGE"
            assert (await error_for(speaker, {"action": "switchLanguage", "targetLanguage": "fr"})) == "LISTENER_ONLY"
            await speaker.send(json.dumps(audio(1)))
            await heartbeat(speaker)
            found = await eventually_async(lambda: stack.audio_records(session_id), what="the unmuted chunk")
            assert [(r["seq"], r["listenerLanguages"]) for r in found] == [(1, ["fr"])]  # chunk 0 was dropped

    run(scenario())


@pytest.mark.parametrize("resume_by", ["websocket", "http"])
def test_paused_audio_is_held_then_forwarded_before_new_audio(stack, http, resume_by):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for seq in range(3):
                await speaker.send(json.dumps(audio(seq)))
            paused = await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            assert paused == {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 0,
                              "listenersByLanguage": {}, "speakerConnected": True}
            for seq in range(3, 7):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2]  # held, not forwarded
            held = await asyncio.to_thread(items, stack, session_id, "AUDIO#")
            assert [int(i["seq"]["N"]) for i in held] == [3, 4, 5, 6]
            assert get_session(http, stack, session_id)["status"] == "paused"

            if resume_by == "websocket":
                await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
                await heartbeat(speaker)  # the resume's reply may be overtaken by its broadcast
                # A WebSocket resume forwards the buffer at once.
                assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2, 3, 4, 5, 6]
            else:
                r = http.patch(f"/sessions/{session_id}", headers=stack.auth(), json={"status": "active"})
                assert r.status_code == 200 and r.json()["status"] == "active"
                # After an HTTP resume the speaker's next chunk forwards the buffer first.
            for seq in range(7, 9):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)

    run(scenario())
    assert seqs(stack, session_id) == list(range(9))
    assert items(stack, session_id, "AUDIO#") == []
    assert int(session_item(stack, session_id).get("bufferedChunks", {"N": "0"})["N"]) == 0


@pytest.mark.local_only("reads the function's log file")
def test_paused_audio_older_than_30_seconds_is_dropped_on_resume(stack, http):
    session_id = new_session(http, stack)["sessionId"]
    ddb = stack.aws("dynamodb")

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)))
            await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            for seq in range(1, 7):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)
            held = await asyncio.to_thread(items, stack, session_id, "AUDIO#")
            assert [int(i["seq"]["N"]) for i in held] == [1, 2, 3, 4, 5, 6]
            # Age the first three as if they had arrived 40 s ago (no 30 s sleep).
            forty_seconds_ago = int(time.time() * 1000) - 40_000
            for item in held[:3]:
                ddb.update_item(TableName=stack["tableName"], Key={"pk": item["pk"], "sk": item["sk"]},
                                UpdateExpression="SET receivedAtMs = :t",
                                ExpressionAttributeValues={":t": {"N": str(forty_seconds_ago)}})
            await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
            await heartbeat(speaker)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 4, 5, 6]
            await speaker.send(json.dumps(audio(7)))
            await heartbeat(speaker)

    flushed_before = len([line for line in stack.log_lines("WsSessionControlFunction")
                          if line.get("message") == "paused audio flushed"])
    run(scenario())
    assert seqs(stack, session_id) == [0, 4, 5, 6, 7]
    assert items(stack, session_id, "AUDIO#") == []  # the dropped ones are deleted too
    flushes = [line for line in stack.log_lines("WsSessionControlFunction")
               if line.get("message") == "paused audio flushed"][flushed_before:]
    assert [(f["forwarded"], f["dropped"]) for f in flushes] == [(3, 3)]
    assert any("AudioDroppedWhilePaused" in line for line in stack.log_lines("WsSessionControlFunction")
               if "_aws" in line)


def test_a_message_over_128_kb_closes_the_socket_with_1009(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            # A chunk of MaxAudioBytes fits one frame and goes through.
            await speaker.send(json.dumps(audio(0, b"\x01" * DEFAULT_MAX_AUDIO_BYTES)))
            await heartbeat(speaker)
            # Just under the message cap (92 KB of audio, 123 KB of JSON in 4 frames): delivered, and
            # answered AUDIO_TOO_LARGE (over MaxAudioBytes); the connection stays open.
            near_cap = frames(audio(1, b"\x01" * (92 * 1024)))
            assert 120 * 1024 < len("".join(near_cap)) < 128 * 1024
            await speaker.send(near_cap)
            assert (await receive(speaker, of_type("error")))["code"] == "AUDIO_TOO_LARGE"
            await heartbeat(speaker)
            await speaker.send(frames(audio(2, b"\x02" * (100 * 1024))))  # ~133 KB of JSON
            code, _ = await closed(speaker)
            assert code == 1009
            # The session is not harmed: the speaker reconnects and goes on.
            again = await sockets.speaker(session_id)
            await again.send(json.dumps(audio(3)))
            await heartbeat(again)

    run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 3]
    assert len(base64.b64decode(records[0]["audio"])) == DEFAULT_MAX_AUDIO_BYTES
    assert get_session(http, stack, session_id)["status"] == "active"


def test_a_binary_frame_closes_the_socket_with_1003(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)).encode())  # bytes: a binary frame
            code, messages = await closed(speaker)
            assert code == 1003 and messages == []

    run(scenario())
    assert seqs(stack, session_id) == []


MALFORMED = [
    ("not json", "INVALID_MESSAGE"),
    ("[1, 2]", "INVALID_MESSAGE"),
    ('"sendAudio"', "INVALID_MESSAGE"),
    ('{"seq": 1}', "INVALID_MESSAGE"),
    ('{"action": "dance"}', "UNKNOWN_ACTION"),
    ('{"action": 5}', "UNKNOWN_ACTION"),
    ('{"action": "$connect"}', "UNKNOWN_ACTION"),
    ('{"action": "sendAudio", "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": "1", "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": 1.5, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": -1, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": true, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": null, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": 1}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": ""}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": 12}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": "not base64!"}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": "AAE"}', "INVALID_AUDIO"),
    ('{"action": "createSession", "sourceLanguage": "en"}', "ALREADY_IN_SESSION"),
]


@pytest.fixture(scope="module")
def malformed_session(http, stack):
    return new_session(http, stack)["sessionId"]


@pytest.mark.parametrize(("frame", "code"), MALFORMED)
def test_a_malformed_message_answers_an_error_and_the_connection_stays_open(stack, malformed_session, frame,
                                                                              code):
    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(malformed_session)
            assert await error_for(speaker, frame) == code
            await heartbeat(speaker)  # still open and served
            await speaker.send(json.dumps(audio(7)))
            await heartbeat(speaker)

    run(scenario())
    assert 1 not in seqs(stack, malformed_session)  # nothing of the bad frames was forwarded


def test_listeners_may_not_send_audio_pause_or_resume(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            for listener in (await sockets.listener(session_id),
                             await sockets.listener(session_id, token=stack.token("alice"))):  # even the owner
                assert await error_for(listener, audio(0)) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "pause"}) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "resume"}) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "createSession", "sourceLanguage": "en"}) == \
                    "SPEAKER_ONLY"
                await heartbeat(listener)

    run(scenario())
    assert get_session(http, stack, session_id)["status"] == "active"
    assert seqs(stack, session_id) == []


@pytest.mark.local_only("injects faults into the local Management API")
def test_audio_and_control_after_the_session_ended_answer_session_ended(stack, http):
    """Between the end of a session and its teardown reaching the speaker's socket, the socket is still
    open. The local Management API's @faults hook keeps the teardown from reaching it until released."""
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)))
            await heartbeat(speaker)
            (connection,) = [i["connectionId"]["S"] for i in items(stack, session_id, "CONN#")]
            assert await asyncio.to_thread(inject_post_faults, stack, connection, 1000) == 204
            try:
                assert http.delete(f"/sessions/{session_id}", headers=stack.auth()).status_code == 204
                assert await error_for(speaker, audio(1)) == "SESSION_ENDED"
                assert await error_for(speaker, {"action": "pause"}) == "SESSION_ENDED"
                assert await error_for(speaker, {"action": "resume"}) == "SESSION_ENDED"
            finally:
                assert await asyncio.to_thread(inject_post_faults, stack, connection, 0) == 204
            # Released, the retried teardown reaches the socket.
            code, messages = await closed(speaker, timeout=60)
            assert [m["type"] for m in messages if m["type"] != "status"] == ["sessionEnded"] and code == 1001

    run(scenario())
    assert seqs(stack, session_id) == [0]


def inject_post_faults(stack: LocalStackHandle, connection_id: str, count: int) -> int:
    """The local Management API's test hook: the next `count` posts to the connection answer 500."""
    return httpx.post(f"{stack['managementApiUrl']}/@faults/{quote(connection_id, safe='')}",
                      params={"count": count}).status_code


# ---------------------------------------------------------------- legacy creation


@pytest.mark.local_only("reads the function's log file")
def test_legacy_session_creation_over_the_websocket(stack, http):
    metric_lines_before = sum("LegacySessionCreation" in line for line in stack.log_lines("WsCreateSessionFunction")
                              if "_aws" in line)

    async def scenario():
        async with Sockets(stack) as sockets:
            legacy = await sockets.open(role="speaker", token=stack.token("alice"))
            # Audio before a session exists has nowhere to go.
            assert await error_for(legacy, audio(0)) == "SESSION_NOT_FOUND"
            assert await error_for(legacy, {"action": "createSession", "sourceLanguage": "xx"}) == \
                "VALIDATION_ERROR"
            created = await ask(legacy, {"action": "createSession", "sourceLanguage": "fr",
                                         "qualityTier": "premium"}, of_type("sessionCreated"))
            session_id = created["sessionId"]
            assert is_valid_session_id(session_id)
            assert (created["sourceLanguage"], created["qualityTier"]) == ("fr", "premium")
            session = get_session(http, stack, session_id)
            assert (session["speakerId"], session["sourceLanguage"], session["qualityTier"], session["status"]) == (
                sub_of(stack, "alice"), "fr", "premium", "active")
            assert await error_for(legacy, {"action": "createSession", "sourceLanguage": "fr"}) == \
                "ALREADY_IN_SESSION"
            for seq in range(3):
                await legacy.send(json.dumps(audio(seq)))
            await heartbeat(legacy)
            # Listeners join it like any other session.
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await legacy.close()  # ends the legacy session
            code, messages = await closed(listener, timeout=30)
            # (It may hear the speaker's audio first: a listener of the source language gets the floor audio.)
            assert [m["type"] for m in messages if m["type"] not in ("status", "audio")] == ["sessionEnded"]
            assert code == 1001
            return session_id

    session_id = run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert {(r["sourceLanguage"], r["qualityTier"]) for r in records} == {("fr", "premium")}
    ended = get_session(http, stack, session_id)
    assert ended["status"] == "ended" and ended["endedAt"] >= ended["createdAt"]
    assert sum("LegacySessionCreation" in line for line in stack.log_lines("WsCreateSessionFunction")
               if "_aws" in line) == metric_lines_before + 1


# ------------------------------------------------- the old clients' own vocabulary

SESSION_CREATED_KEYS = {"type", "sessionId", "sourceLanguage", "qualityTier", "partialResultsEnabled",
                        "minStabilityThreshold", "maxBufferTimeout", "connectionId", "timestamp"}
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


@pytest.mark.local_only("reads the EMF metrics from the function's log file")
def test_an_old_client_plays_a_whole_session_in_its_own_vocabulary(stack, http):
    counted_before = legacy_messages_counted(stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            old = await sockets.open(role="speaker", token=stack.token("alice"))
            before = int(time.time() * 1000)
            created = await ask(old, {"action": "createSession", "sourceLanguage": "de", "qualityTier": "premium",
                                      "partialResults": "false", "minStability": 0.9, "maxBufferTimeout": 3.5,
                                      "oldClientBuild": "4.2.0"}, of_type("sessionCreated"))
            assert set(created) == SESSION_CREATED_KEYS, created
            session_id = created["sessionId"]
            assert before - 1000 <= created["timestamp"] <= int(time.time() * 1000) + 1000
            assert (created["sourceLanguage"], created["qualityTier"], created["partialResultsEnabled"],
                    created["minStabilityThreshold"], created["maxBufferTimeout"]) == ("de", "premium", False, 0.9, 3.5)
            item = await asyncio.to_thread(session_item, stack, session_id)
            assert created["connectionId"] == item["speakerConnectionId"]["S"]
            session = get_session(http, stack, session_id)
            assert (session["partialResultsEnabled"], session["minStabilityThreshold"],
                    session["maxBufferTimeout"]) == (False, 0.9, 3.5)

            for index in range(3):
                await old.send(json.dumps(audio_chunk(index, session_id)))
            paused = await ask(old, {"action": "pauseBroadcast"}, of_type("status", status="paused"))
            assert paused == {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 0,
                              "listenersByLanguage": {}, "speakerConnected": True}
            for index in range(3, 5):
                await old.send(json.dumps(audio_chunk(index, session_id)))
            await heartbeat(old)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2]  # held while paused
            # The same refusals as sendAudio's, and the connection stays open.
            assert await error_for(old, audio_chunk(9, "other-eagle-123")) == "SESSION_MISMATCH"
            assert await error_for(old, {**audio_chunk(9, session_id), "chunkIndex": -1}) == "INVALID_SEQ"
            await ask(old, {"action": "resumeBroadcast", "sessionId": session_id}, of_type("status", status="active"))
            await heartbeat(old)  # the resume's reply may be overtaken by its broadcast
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2, 3, 4]
            await old.send(json.dumps(audio_chunk(5, session_id)))
            await heartbeat(old)
            await old.close()  # ends the session, as it always did
            return session_id

    session_id = run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert [base64.b64decode(r["audio"]) for r in records] == [f"old-chunk-{i}".encode() for i in range(6)]
    for record in records:
        assert (record["sourceLanguage"], record["qualityTier"], record["partialResultsEnabled"],
                record["minStabilityThreshold"], record["maxBufferTimeout"]) == ("de", "premium", False, 0.9, 3.5)
    assert {r["shard"] for r in records} == {records[0]["shard"]}
    eventually(lambda: get_session(http, stack, session_id)["status"] == "ended", what="the session ended")
    # Every old message counted by action, refused ones too.
    expected = {"createSession": 1, "audioChunk": 8, "pauseBroadcast": 1, "resumeBroadcast": 1}
    eventually(lambda: {action: legacy_messages_counted(stack)[action] - counted_before[action]
                        for action in expected} == expected, what="LegacyProtocolMessage by action")
    ignored = [line for line in stack.log_lines("WsCreateSessionFunction")
               if line.get("message") == "legacy message fields ignored"]
    assert [line["ignoredFields"] for line in ignored] == [["oldClientBuild"]]


# ------------------------------------------------------------ disconnect, reconnect


def test_a_disconnect_keeps_the_session(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await speaker.close()
            await listener.close()

    run(scenario())
    eventually(lambda: items(stack, session_id, "CONN#") == [], what="connection records removed")
    session = get_session(http, stack, session_id)
    assert (session["status"], session["listenerCount"]) == ("active", 0)
    assert "speakerConnectionId" not in session_item(stack, session_id)


def test_a_reconnecting_speaker_replaces_its_old_connection(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            first = await sockets.speaker(session_id)
            await first.send(json.dumps(audio(0)))
            await heartbeat(first)
            listener = await sockets.listener(session_id)
            second = await sockets.speaker(session_id)
            code, messages = await closed(first)
            replaced = [m for m in messages if m.get("type") == "error"]
            assert [m["code"] for m in replaced] == ["SPEAKER_REPLACED"] and code == 1001
            await second.send(json.dumps(audio(1)))
            await heartbeat(second)
            # The old connection's $disconnect left the new one in place.
            speakers = await eventually_async(
                lambda: (s := [i for i in items(stack, session_id, "CONN#") if i["role"]["S"] == "speaker"])
                and len(s) == 1 and s, what="one speaker record")
            assert session_item(stack, session_id)["speakerConnectionId"]["S"] == speakers[0]["connectionId"]["S"]
            await ask(second, {"action": "pause"}, of_type("status", status="paused"))
            # The listener reconnects too: counted once.
            await listener.close()
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await eventually_async(lambda: get_session(http, stack, session_id)["listenerCount"] == 1 and len(
                [i for i in items(stack, session_id, "CONN#") if i["role"]["S"] == "listener"]) == 1)

    run(scenario())
    assert seqs(stack, session_id) == [0, 1]
    assert get_session(http, stack, session_id)["status"] == "paused"


# ---------------------------------------------------------------- status broadcasts


def test_status_changes_by_http_and_by_the_speaker_reach_every_socket(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listeners = [await sockets.listener(session_id), await sockets.listener(session_id, targetLanguage="es")]
            everyone = [speaker, *listeners]
            for ws in everyone:  # the joins are broadcast too
                await receive(ws, of_type("status", listenerCount=2), BROADCAST_WAIT)

            r = http.patch(f"/sessions/{session_id}", headers=stack.auth(), json={"status": "paused"})
            assert r.status_code == 200
            for ws in everyone:
                message = await receive(ws, of_type("status", status="paused"), BROADCAST_WAIT)
                assert message == {"type": "status", "sessionId": session_id, "status": "paused",
                                   "listenerCount": 2, "listenersByLanguage": {"en": 1, "es": 1},
                                   "speakerConnected": True}

            await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
            for ws in listeners:
                await receive(ws, of_type("status", status="active", listenerCount=2), BROADCAST_WAIT)

    run(scenario())


def test_listener_count_after_concurrent_joins_and_abrupt_drops(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listeners = await sockets.listeners(session_id, 30)
            assert get_session(http, stack, session_id)["listenerCount"] == 30
            for ws in listeners[:10]:
                ws.transport.abort()  # the TCP connection drops: no close frame
            await asyncio.gather(*(ws.close() for ws in listeners[10:15]))
            still_open = listeners[15:]
            count = await eventually_async(
                lambda: (c := get_session(http, stack, session_id)["listenerCount"]) == 15 and c,
                timeout=20, what="listenerCount back to 15")
            assert count == len(still_open) == 15
            assert len(await asyncio.to_thread(items, stack, session_id, "CONN#")) == 15
            for ws in still_open:
                await heartbeat(ws)  # the survivors are untouched
            # ...and the last count they are told is the true one.
            for ws in still_open:
                await receive(ws, of_type("status", listenerCount=15), BROADCAST_WAIT)

    run(scenario())


def test_heartbeat_is_acknowledged_with_the_server_time(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            for ws in (await sockets.speaker(session_id), await sockets.listener(session_id)):
                before = int(time.time() * 1000)
                ack = await heartbeat(ws)
                after = int(time.time() * 1000)
                assert set(ack) == {"type", "serverTime"}
                assert before - 1000 <= ack["serverTime"] <= after + 1000

    run(scenario())


# ------------------------------------------- a second stack: other template parameters


class _StackInBackground:
    """A second local stack, started on a thread while the tests of the first one run (its start-up is
    mostly waiting on processes), and stopped when the module is done."""

    def __init__(self, state_dir, *args: str) -> None:
        self.handle: LocalStackHandle | None = None
        self.error: BaseException | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(state_dir, args), daemon=True)
        self._thread.start()

    def _run(self, state_dir, args) -> None:
        try:
            with running_stack(state_dir, *args) as (info, process):
                self.handle = LocalStackHandle(info, state_dir, process)
                self._ready.set()
                self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported by the fixtures
            self.error = exc
        finally:
            self._ready.set()

    def wait(self) -> LocalStackHandle:
        self._ready.wait(STARTUP_TIMEOUT + 30)
        if self.handle is None:
            pytest.fail(f"the second local stack did not start: {self.error}")
        return self.handle

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        if self.error:
            pytest.fail(f"the second local stack did not stop cleanly: {self.error}")


@pytest.fixture(scope="module", autouse=True)
def _strict_stack_in_background(request, tmp_path_factory):
    """Starts the strict stack with the module's first test, if any selected test needs it."""
    module = request.node
    if DEPLOYED_STACK or not any("strict_stack" in getattr(item, "fixturenames", ()) for item in request.session.items
               if item.module is module.obj):
        yield None
        return
    starter = _StackInBackground(
        tmp_path_factory.mktemp("strict-stack"), "--parameter-overrides", "MaxListenersPerSession=3",
        "LegacyWebSocketSessionCreation=disabled", "AllowAnonymousListeners=false", "MaxAudioBytes=2048",
        f"MaxLiveSessionsPerUser={SUITE_SESSION_CAP}")
    yield starter
    starter.stop()


@pytest.fixture(scope="module")
def strict_stack(_strict_stack_in_background):
    """Listener cap 3, legacy creation disabled, no anonymous listeners, 2 KB audio chunks (the session cap of
    the shared stack)."""
    return _strict_stack_in_background.wait()


@pytest.fixture(scope="module")
def strict_http(strict_stack):
    with httpx.Client(base_url=strict_stack.url, timeout=30) as client:
        yield client


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_a_full_session_refuses_listeners_even_when_they_race_for_the_last_places(strict_stack, strict_http):
    stack, http = strict_stack, strict_http
    session_id = new_session(http, stack)["sessionId"]
    token = stack.token("bob")

    async def attempt():
        try:
            ws = await open_ws(stack, sessionId=session_id, role="listener", token=token)
        except InvalidStatus as exc:
            return exc.response.status_code
        return ws

    async def scenario():
        async with Sockets(stack) as sockets:
            first = await sockets.listener(session_id, token=token)
            # Six race for the two places left: the cap holds at $connect, atomically.
            outcomes = await asyncio.gather(*(attempt() for _ in range(6)))
            admitted = [o for o in outcomes if not isinstance(o, int)]
            sockets.opened += admitted
            assert sorted(o for o in outcomes if isinstance(o, int)) == [403] * 4 and len(admitted) == 2
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            before = len(refusal_reasons(stack))
            assert await refused(stack, sessionId=session_id, role="listener", token=token) == 403
            assert refusal_reasons(stack)[before:] == ["SESSION_FULL"]
            # Speakers do not count against the cap.
            speaker = await sockets.speaker(session_id)
            await heartbeat(speaker)
            # A place freed is a place taken.
            await first.close()
            await eventually_async(lambda: get_session(http, stack, session_id)["listenerCount"] == 2)
            await heartbeat(await sockets.listener(session_id, token=token))
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            assert len(await asyncio.to_thread(items, stack, session_id, "CONN#")) == 4

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_anonymous_listeners_are_refused_when_not_allowed(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        before = len(refusal_reasons(stack))
        assert await refused(stack, sessionId=session_id, role="listener") == 401
        assert refusal_reasons(stack)[before:] == ["UNAUTHORIZED"]
        async with Sockets(stack) as sockets:
            await heartbeat(await sockets.listener(session_id, token=stack.token("bob")))

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_legacy_session_creation_can_be_switched_off(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        before = len(refusal_reasons(stack))
        assert await refused(stack, role="speaker", token=stack.token("alice")) == 403
        assert refusal_reasons(stack)[before:] == ["LEGACY_CREATION_DISABLED"]
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            assert await error_for(speaker, {"action": "createSession", "sourceLanguage": "en"}) == \
                "LEGACY_CREATION_DISABLED"
            await heartbeat(speaker)

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_the_old_vocabulary_answers_legacy_creation_disabled_when_switched_off(strict_stack, strict_http):
    stack, http = strict_stack, strict_http
    session_id = new_session(http, stack)["sessionId"]
    counted_before = legacy_messages_counted(stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for message in ({"action": "createSession", "sourceLanguage": "en", "partialResults": True,
                             "minStability": 0.85, "maxBufferTimeout": 5.0},
                            audio_chunk(0, session_id), {"action": "pauseBroadcast"}, {"action": "resumeBroadcast"}):
                reply = await ask(speaker, message, of_type("error"))
                assert reply["code"] == "LEGACY_CREATION_DISABLED", reply
                assert "POST /sessions" in reply["message"] or "sendAudio" in reply["message"]
            # The new vocabulary works on the same socket.
            await speaker.send(json.dumps(audio(1)))
            await heartbeat(speaker)

    run(scenario())
    assert seqs(stack, session_id) == [1]
    assert get_session(http, stack, session_id)["status"] == "active"
    expected = dict.fromkeys(OLD_ACTION_FUNCTIONS, 1)
    eventually(lambda: {action: legacy_messages_counted(stack)[action] - counted_before[action]
                        for action in expected} == expected, what="refused old messages counted")


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_audio_over_max_audio_bytes_is_refused_and_the_connection_stays_open(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            assert await error_for(speaker, audio(0, b"\x07" * 2049)) == "AUDIO_TOO_LARGE"
            assert await error_for(speaker, audio(1, b"\x07" * 9000)) == "AUDIO_TOO_LARGE"
            await speaker.send(json.dumps(audio(2, b"\x07" * 2048)))  # exactly the limit
            await heartbeat(speaker)

    run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [2]
    assert len(base64.b64decode(records[0]["audio"])) == 2048
