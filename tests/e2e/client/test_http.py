"""The client library's HTTP service: client errors are raised typed after exactly one request; server errors are
retried with the same idempotency key; a rejected or expired token is refreshed once through Cognito; writes made
offline are queued and replayed once the network is back."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time

import httpx
import pytest
from broadcast_client import (
    CognitoTokenProvider,
    Conflict,
    Forbidden,
    NetworkUnavailable,
    NotFound,
    OperationQueued,
    ServiceUnavailable,
    SessionEnded,
    SessionHttpService,
    StaticTokenProvider,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
    WebSocketClient,
)

pytestmark = pytest.mark.local_only("the client's --local configuration reads the local stack's stack.json")


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
