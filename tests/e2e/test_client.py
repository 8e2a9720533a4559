"""The client library and the broadcast-session CLI end to end, against the real local stack:
real Cognito tokens, the real HTTP and WebSocket gateways and handlers, audio checked in Kinesis.

Failures are injected only around the real transport (an httpx transport wrapper, a dead port,
a forged token); the server under test is never mocked.

The listener test runs first on purpose: on the local stack, the status broadcasts (DynamoDB
stream -> StatusBroadcastFunction) stop for good after the first cancelled TransactWriteItems,
and ending a session that still has a listener causes one (the teardown and $disconnect both
remove the listener; the second removal is cancelled). moto's transact_write_items swaps in a
deep copy of the table (and of its stream shard) on cancellation, and the poller in
local_stack/streams.py keeps reading through iterators bound to the orphaned shard. Until the
poller is fixed, later test modules of the same pytest session get no status broadcasts either.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from local_stack.aws import client as _aws_client
from tests.support.audio import write_tone

ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = ROOT / "client"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

from broadcast_client import (
    CognitoTokenProvider,
    Conflict,
    Forbidden,
    NetworkUnavailable,
    NotFound,
    OperationQueued,
    RetryPolicy,
    ServiceUnavailable,
    SessionEnded,
    SessionHttpService,
    StaticTokenProvider,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
    WebSocketClient,
    load_local_config,
    start_broadcast,
)

pytestmark = pytest.mark.local_only("the client's --local configuration reads the local stack's stack.json")

TIMEOUT = 20.0  # seconds for any one thing the stack does asynchronously (broadcasts, teardown)
FAST_RECONNECT = RetryPolicy(max_retries=10, base_delay=0.2, max_delay=1.0)


# ---------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def stack_json(stack) -> Path:
    return stack.state_dir / "stack.json"


@pytest.fixture(scope="module")
def config(stack_json):
    return load_local_config(stack_json)


@functools.cache
def aws_client(service: str, endpoint: str, region: str):
    return _aws_client(service, endpoint, region)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broadcast_client", *args]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLIENT_DIR), env.get("PYTHONPATH")]))
    return env


def run_cli(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    # cwd=tmp_path: no .local/stack.json there, so only --local decides which stack is used.
    return subprocess.run(cli_command(*args), cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)


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


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


class Recorder(httpx.AsyncBaseTransport):
    """The real transport, recording each (request, response). ``script`` plays first: an int
    answers that status without reaching the server; ("lost", status) sends the request to the
    server and answers the status instead of the server's response (kept in ``swallowed``)."""

    def __init__(self, script=(), headers: dict[str, str] | None = None) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.script = list(script)
        self.headers = headers or {}
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []
        self.swallowed: list[httpx.Response] = []

    @property
    def requests(self) -> list[httpx.Request]:
        return [request for request, _ in self.exchanges]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        step = self.script.pop(0) if self.script else None
        if step is None:
            response = await self.inner.handle_async_request(request)
            await response.aread()
        else:
            if isinstance(step, tuple):
                real = await self.inner.handle_async_request(request)
                await real.aread()
                self.swallowed.append(real)
                step = step[1]
            response = httpx.Response(step, headers=self.headers, json={"error": {
                "code": "SERVICE_UNAVAILABLE", "message": "injected", "requestId": f"injected-{len(self.exchanges)}"}})
        self.exchanges.append((request, response))
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class Output:
    """Lines of a subprocess's stdout, read as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self.lines: list[str] = []

    async def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        async def read() -> str:
            while True:
                raw = await self._stream.readline()
                if not raw:
                    raise AssertionError(f"stdout ended before {text!r}: {self.lines}")
                self.lines.append(raw.decode().rstrip("\n"))
                if text in self.lines[-1]:
                    return self.lines[-1]
        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {text!r} within {timeout}s; stdout so far: {self.lines}") from None


async def next_status(messages, predicate) -> dict:
    """The next status message that satisfies ``predicate`` (stream batching may skip intermediate ones)."""
    async def find() -> dict:
        async for message in messages:
            assert message["type"] != "sessionEnded", message
            if message["type"] == "status" and predicate(message):
                return message
        raise AssertionError("messages() ended")
    return await asyncio.wait_for(find(), TIMEOUT)


# --------------------------------------------------------------------------- listeners


def test_listeners_follow_status_and_listener_count_until_the_session_is_deleted(stack, stack_json, config, tmp_path):
    """A library listener (anonymous) and the CLI listener (bob) on alice's session: both see the
    listener count and the speaker's PATCH; the session's DELETE ends both."""

    async def scenario() -> None:
        async with config.http_service(config.token_provider("alice")) as http:
            session = await http.create_session("en")
            sid = session.session_id
            with (tmp_path / "listener.err").open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *cli_command("listener", sid, "--language", "es", "--username", "bob", "--local", str(stack_json)),
                    cwd=tmp_path, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=stderr)
            try:
                cli = Output(process.stdout)
                await cli.expect(f"Listening to session {sid} in es.")

                async with WebSocketClient(config.websocket_url, sid, role="listener", target_language="fr",
                                           join_key=session.join_key) as live:
                    messages = live.messages()
                    joined = await next_status(messages, lambda m: m["listenerCount"] == 2)
                    assert joined == {"type": "status", "sessionId": sid, "status": "active", "listenerCount": 2,
                                      "listenersByLanguage": {"es": 1, "fr": 1}, "speakerConnected": False}
                    await cli.expect("active, 2 listener(s)")

                    paused = await http.update_session(sid, status="paused")
                    assert (paused.status, paused.listener_count) == ("paused", 2)
                    status = await next_status(messages, lambda m: m["status"] == "paused")
                    assert status == {"type": "status", "sessionId": sid, "status": "paused", "listenerCount": 2,
                                      "listenersByLanguage": {"es": 1, "fr": 1}, "speakerConnected": False}
                    await cli.expect("paused, 2 listener(s)")

                    await http.delete_session(sid)
                    rest = await asyncio.wait_for(_collect(messages), TIMEOUT)  # ends after sessionEnded
                    assert [m["type"] for m in rest][-1:] == ["sessionEnded"], rest
                    assert rest[-1]["sessionId"] == sid
                    assert live.session_ended

                await cli.expect(f"Session {sid} ended.")
                assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0, (tmp_path / "listener.err").read_text()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert (await http.get_session(sid)).status == "ended"

    asyncio.run(scenario())


async def _collect(messages) -> list[dict]:
    return [message async for message in messages]


# ----------------------------------------------------------------------------- speaker


def test_cli_speaker_streams_the_whole_wav_in_order_and_ends_the_session(stack, stack_json, config, tmp_path):
    frames = write_tone(tmp_path / "tone.wav", seconds=1.5)  # 15 chunks of 100 ms
    result = run_cli(tmp_path, "speaker", "--file", str(tmp_path / "tone.wav"), "--language", "en",
                     "--local", str(stack_json))
    assert result.returncode == 0, result.stdout + result.stderr
    live = re.search(r"^Session (\S+) is live \(en, standard\)\.$", result.stdout, re.MULTILINE)
    assert live, result.stdout
    sid = live.group(1)
    # A link session (the default): the printed listener command carries its key.
    assert re.search(rf"broadcast-session listener {sid} --join-key [A-Za-z0-9_-]{{32}} --local "
                     rf"{re.escape(str(stack_json.resolve()))}", result.stdout), result.stdout
    assert f"Session {sid} ended." in result.stdout
    assert "Sent 15 chunk(s)." in result.stderr

    records = stack.audio_records(sid)
    assert [r["seq"] for r in records] == list(range(15))
    assert b"".join(base64.b64decode(r["audio"]) for r in records) == frames
    assert {(r["sourceLanguage"], r["qualityTier"]) for r in records} == {("en", "standard")}

    async def status() -> str:
        async with config.http_service(config.token_provider()) as http:
            return (await http.get_session(sid)).status

    assert asyncio.run(status()) == "ended"


def test_cli_speaker_keep_leaves_the_session_open(stack, stack_json, config, tmp_path):
    frames = write_tone(tmp_path / "short.wav", seconds=0.5)
    result = run_cli(tmp_path, "speaker", "--file", str(tmp_path / "short.wav"), "--language", "fr",
                     "--quality", "premium", "--keep", "--local", str(stack_json))
    assert result.returncode == 0, result.stdout + result.stderr
    sid = re.search(r"^Session (\S+) is live \(fr, premium\)\.$", result.stdout, re.MULTILINE).group(1)
    hint = f"Session {sid} is still open; end it with: broadcast-session delete {sid} --local {stack_json.resolve()}"
    assert hint in result.stdout
    assert f"Session {sid} ended." not in result.stdout

    records = stack.audio_records(sid)
    assert [r["seq"] for r in records] == list(range(5))
    assert b"".join(base64.b64decode(r["audio"]) for r in records) == frames

    async def get():
        async with config.http_service(config.token_provider()) as http:
            return await http.get_session(sid)

    session = asyncio.run(get())
    assert (session.status, session.source_language, session.quality_tier) == ("active", "fr", "premium")

    ended = run_cli(tmp_path, "delete", sid, "--local", str(stack_json))  # the command the hint gave
    assert ended.returncode == 0, ended.stderr
    assert ended.stdout.strip() == f"Session {sid} ended."
    assert asyncio.run(get()).status == "ended"


# ------------------------------------------------------------ the server drops the speaker


def test_speaker_reconnects_after_the_server_drops_it_and_no_audio_is_lost(stack, config):
    """DeleteConnection (1001) between two chunks: the client reconnects with the same sessionId,
    audio queued meanwhile follows on the new connection, and Kinesis gets every seq once, in order."""
    total, drop_after, pace = 40, 14, 0.03

    async def scenario() -> tuple[str, int, list[str], list[str]]:
        tokens = config.token_provider()
        async with config.http_service(tokens) as http:
            broadcast = await start_broadcast(http, config.websocket_url, tokens, source_language="en",
                                              reconnect=FAST_RECONNECT)
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
                                       reconnect=FAST_RECONNECT) as live:
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


# ------------------------------------------------------------------------------- HTTP


def test_client_errors_are_raised_typed_after_exactly_one_request(stack, config):
    async def scenario() -> None:
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        alice_wire, bob_wire = Recorder(), Recorder()
        async with (SessionHttpService(stack.url, token_provider=config.token_provider("alice"), transport=alice_wire,
                                       sleep=sleep) as alice,
                    SessionHttpService(stack.url, token_provider=config.token_provider("bob"), transport=bob_wire,
                                       sleep=sleep) as bob):
            session = await alice.create_session("en")
            sid = session.session_id

            async def refused(call, wire: Recorder, error: type, status: int, code: str) -> None:
                wire.exchanges.clear()
                with pytest.raises(error) as raised:
                    await call
                assert len(wire.requests) == 1, [str(r.url) for r in wire.requests]
                response = wire.exchanges[0][1]
                assert (raised.value.status, raised.value.code) == (status, code)
                assert raised.value.request_id == response.headers["apigw-requestid"]
                assert raised.value.retry_after is None

            await refused(alice.get_session("quiet-otter-999"), alice_wire, NotFound, 404, "SESSION_NOT_FOUND")
            await refused(alice.get_session("Not-A-Session"), alice_wire, ValidationFailed, 400, "INVALID_SESSION_ID")
            await refused(bob.update_session(sid, status="paused"), bob_wire, Forbidden, 403, "FORBIDDEN")
            await refused(bob.delete_session(sid), bob_wire, Forbidden, 403, "FORBIDDEN")
            await refused(alice.update_session(sid, quality_tier="premium", if_match=session.version + 5),
                          alice_wire, VersionConflict, 409, "VERSION_CONFLICT")
            await alice.delete_session(sid)
            await refused(alice.update_session(sid, status="active"), alice_wire, SessionEnded, 409, "SESSION_ENDED")
            assert sleeps == []
            assert (await bob.get_session(sid)).status == "ended"  # anyone signed in may read

    asyncio.run(scenario())


def test_server_errors_are_retried_with_the_same_idempotency_key(stack, config):
    async def scenario() -> None:
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        tokens = config.token_provider()
        # 503 before the server saw it; then a 503 after the server created the session (the answer
        # was lost); then the real answer: the replay of the first creation, not a second session.
        wire = Recorder(script=[503, ("lost", 503)])
        async with SessionHttpService(stack.url, token_provider=tokens, transport=wire, sleep=sleep) as http:
            session = await http.create_session("de", "premium")
            assert len(wire.requests) == 3
            assert len({r.headers["Idempotency-Key"] for r in wire.requests}) == 1
            assert wire.exchanges[-1][1].status_code == 201
            created_on_the_lost_try = wire.swallowed[0].json()
            assert wire.swallowed[0].status_code == 201
            assert session.to_json() == created_on_the_lost_try
            assert len(sleeps) == 2 and 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0
            assert (await http.get_session(session.session_id)).status == "active"

        sleeps.clear()
        wire = Recorder(script=[503] * 4)
        async with SessionHttpService(stack.url, token_provider=tokens, transport=wire, sleep=sleep) as http:
            with pytest.raises(ServiceUnavailable) as raised:
                await http.get_session(session.session_id)
            assert (raised.value.status, raised.value.code) == (503, "SERVICE_UNAVAILABLE")
            assert len(wire.requests) == 4 and len(sleeps) == 3  # 1 + RetryPolicy.max_retries

        sleeps.clear()
        wire = Recorder(script=[503], headers={"Retry-After": "2"})
        async with SessionHttpService(stack.url, token_provider=tokens, transport=wire, sleep=sleep) as http:
            assert (await http.delete_session(session.session_id)) is None
            assert [r.method for r in wire.requests] == ["DELETE", "DELETE"]
            assert sleeps == [2.0]  # the server's Retry-After, not a backoff
            assert (await http.get_session(session.session_id)).status == "ended"

    asyncio.run(scenario())


def _forged_jwt(exp: float) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return ".".join([part({"alg": "RS256", "kid": "forged"}),
                     part({"sub": "forged", "token_use": "id", "exp": int(exp)}), "Zm9yZ2Vk"])


class ForgedThenCognito:
    """Hands out a forged token first; refresh() is the real CognitoTokenProvider's."""

    def __init__(self, real: CognitoTokenProvider, forged: str) -> None:
        self.real, self.forged = real, forged
        self.handed_out: list[str] = []
        self.refreshes = 0

    async def token(self) -> str:
        token = self.forged if not self.handed_out else await self.real.token()
        self.handed_out.append(token)
        return token

    async def refresh(self) -> str:
        self.refreshes += 1
        return await self.real.refresh()


class ForgedForever:
    """Every token, refreshed or not, is a new forgery."""

    def __init__(self) -> None:
        self.count = 0

    async def token(self) -> str:
        return await self.refresh()

    async def refresh(self) -> str:
        self.count += 1
        return _forged_jwt(time.time() + 3600 + self.count)


def test_a_rejected_or_expired_token_is_refreshed_once_through_cognito(stack, config):
    async def scenario() -> None:
        # Rejected by the server (signature), though not expired: 401, one refresh, one retry.
        forged = _forged_jwt(time.time() + 3600)
        tokens = ForgedThenCognito(config.token_provider(), forged)
        wire = Recorder()
        async with SessionHttpService(stack.url, token_provider=tokens, transport=wire) as http:
            session = await http.create_session("it")
            assert [response.status_code for _, response in wire.exchanges] == [401, 201]
            sent = [r.headers["Authorization"] for r in wire.requests]
            assert sent[0] == f"Bearer {forged}" and sent[1] != sent[0]
            assert tokens.refreshes == 1
            assert len({r.headers["Idempotency-Key"] for r in wire.requests}) == 1
            assert (await http.get_session(session.session_id)).session_id == session.session_id
            assert tokens.refreshes == 1 and len(wire.requests) == 3  # the new token is kept

        # Expired by its own exp: refreshed before sending, so the server never sees it.
        tokens = ForgedThenCognito(config.token_provider(), _forged_jwt(time.time() - 10))
        wire = Recorder()
        async with SessionHttpService(stack.url, token_provider=tokens, transport=wire) as http:
            assert (await http.get_session(session.session_id)).status == "active"
            assert [response.status_code for _, response in wire.exchanges] == [200]
            assert tokens.refreshes == 1

        # A refresh that does not help: Unauthorized after the one retry. A static token cannot be
        # refreshed at all, so there is nothing to retry with.
        for provider, attempts in ((ForgedForever(), 2), (StaticTokenProvider(forged), 1)):
            wire = Recorder()
            async with SessionHttpService(stack.url, token_provider=provider, transport=wire) as http:
                with pytest.raises(Unauthorized) as raised:
                    await http.get_session(session.session_id)
                assert (raised.value.status, raised.value.code) == (401, "UNAUTHORIZED")
                assert [response.status_code for _, response in wire.exchanges] == [401] * attempts

        # The WebSocket handshake: 401 with the forged token, then connected with the refreshed one.
        tokens = ForgedThenCognito(config.token_provider(), forged)
        async with WebSocketClient(config.websocket_url, session.session_id, role="speaker",
                                   token_provider=tokens) as live:
            assert live.connected and live.connections == 1
            assert tokens.refreshes == 1
        async with config.http_service(config.token_provider()) as http:
            await http.delete_session(session.session_id)

    asyncio.run(scenario())


class Network(httpx.AsyncBaseTransport):
    """The real transport; while offline, requests go to a port where nothing listens."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.online = True
        self.tried: list[httpx.Request] = []  # sent while offline
        self.delivered: list[httpx.Request] = []  # answered by the stack
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.dead_port = probe.getsockname()[1]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.online:
            self.tried.append(request)
            request.url = request.url.copy_with(port=self.dead_port)
        response = await self.inner.handle_async_request(request)
        self.delivered.append(request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_offline_writes_are_queued_and_replayed_once_the_network_is_back(stack, config):
    async def scenario() -> None:
        network = Network()
        tokens = config.token_provider()
        async with SessionHttpService(stack.url, token_provider=tokens, transport=network, sleep=no_sleep) as http:
            existing = await http.create_session("en")
            since = int(time.time())
            network.online = False

            with pytest.raises(OperationQueued) as queued:
                await http.create_session("pt", "premium")
            create = queued.value.operation
            assert len(network.tried) == 4  # 1 + 3 retries, then queued
            with pytest.raises(OperationQueued) as queued:
                await http.update_session(existing.session_id, status="paused")
            update = queued.value.operation
            assert http.pending == (create, update)
            with pytest.raises(NetworkUnavailable) as unreachable:
                await http.get_session(existing.session_id)  # reads are not queued
            assert not isinstance(unreachable.value, OperationQueued)
            assert http.pending == (create, update) and not create.done
            assert len({r.headers["Idempotency-Key"] for r in network.tried if r.method == "POST"}) == 1
            assert len(network.delivered) == 1  # only the first create, before going offline

            network.online = True
            read = await http.get_session(existing.session_id)  # the queue is replayed first, in order
            assert [r.method for r in network.delivered[1:]] == ["POST", "PATCH", "GET"]
            assert http.pending == () and create.done and update.done
            assert read.status == "paused" and (await update.wait()).status == "paused"
            created = await create.wait()
            assert (created.source_language, created.quality_tier, created.status) == ("pt", "premium", "active")
            assert network.delivered[1].headers["Idempotency-Key"] == create.idempotency_key
            assert await http.flush() == []

            # The same create replayed twice more (same Idempotency-Key): the same session, not new ones.
            for _ in range(2):
                again = await http.create_session("pt", "premium", idempotency_key=create.idempotency_key)
                assert again == created
            with pytest.raises(Conflict) as reused:
                await http.create_session("de", idempotency_key=create.idempotency_key)
            assert (reused.value.status, reused.value.code) == (409, "IDEMPOTENCY_KEY_REUSED")

            for sid in (existing.session_id, created.session_id):
                await http.delete_session(sid)
        return existing.speaker_id, since

    speaker_id, since = asyncio.run(scenario())
    # Exactly one pt/premium session exists for alice since going offline.
    ddb = stack.aws("dynamodb")
    items = ddb.scan(TableName=stack["tableName"], ConsistentRead=True,
                     FilterExpression="sk = :meta AND speakerId = :me AND sourceLanguage = :pt AND createdAt >= :t",
                     ExpressionAttributeValues={":meta": {"S": "META"}, ":me": {"S": speaker_id},
                                                ":pt": {"S": "pt"}, ":t": {"N": str(since)}})["Items"]
    assert len(items) == 1, items
