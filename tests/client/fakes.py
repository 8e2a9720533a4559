"""Test doubles for the client: a fake clock, token providers, a scripted HTTP
transport and an in-process WebSocket server standing in for API Gateway."""

from __future__ import annotations

import asyncio
import base64
import functools
import heapq
import itertools
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import httpx
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

TEST_TIMEOUT = 10.0


def async_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Runs an async test in a fresh event loop, bounded so a hang fails instead of blocking."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), TEST_TIMEOUT))

    return wrapper


def jwt(exp: float, sub: str = "user-1", tag: str = "") -> str:
    """A JWT-shaped token with the given exp (unsigned: the client never verifies)."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part({'sub': sub, 'exp': exp, 'tag': tag})}.c2ln"


class FakeTokens:
    """Hands out tokens[0], then tokens[1] after the first refresh, and so on."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.refreshes = 0

    async def token(self) -> str:
        return self.tokens[min(self.refreshes, len(self.tokens) - 1)]

    async def refresh(self) -> str:
        self.refreshes += 1
        return await self.token()


class Clock:
    """Epoch seconds that only move when told; sleep() records and advances."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


# ------------------------------------------------------------------ HTTP


def session_json(session_id: str = "golden-eagle-427", **overrides: Any) -> dict[str, Any]:
    body = {"sessionId": session_id, "speakerId": "user-1", "sourceLanguage": "en", "qualityTier": "standard",
            "status": "active", "listenerCount": 0, "createdAt": 1_700_000_000, "updatedAt": 1_700_000_000,
            "expiresAt": 1_700_086_400, "version": 1}
    return {**body, **overrides}


def error_json(code: str, message: str = "nope", request_id: str = "req-1") -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "requestId": request_id}}


class Script:
    """A MockTransport handler answering with the given steps in order: an
    httpx.Response, an exception to raise, or a callable(request) -> Response."""

    def __init__(self, *steps: Any) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if not self.steps:
            raise AssertionError(f"unexpected request {request.method} {request.url}")
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step(request) if callable(step) else step

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


def offline() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


# ------------------------------------------------------------- fake timers


class FakeTimers:
    """An asyncio sleep on a fake clock: sleepers wake only when the test advances time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.requested: list[float] = []
        self._heap: list[tuple[float, int, float, asyncio.Future[None]]] = []
        self._ids = itertools.count()
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def sleep(self, delay: float) -> None:
        self.requested.append(delay)
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (self.now + delay, next(self._ids), delay, future))
        async with self._condition():
            self._condition().notify_all()
        await future

    def sleeping(self, delay: float) -> bool:
        return any(d == delay and not f.done() for _, _, d, f in self._heap)

    async def wait_for_sleeper(self, delay: float) -> None:
        """Waits until some task is in a sleep(delay)."""
        async with self._condition():
            await self._condition().wait_for(lambda: self.sleeping(delay))

    async def advance(self, seconds: float) -> None:
        target = self.now + seconds
        while self._heap and self._heap[0][0] <= target:
            deadline, _, _, future = heapq.heappop(self._heap)
            self.now = max(self.now, deadline)
            if not future.done():
                future.set_result(None)
            for _ in range(5):  # let the woken task run up to its next await
                await asyncio.sleep(0)
        self.now = target


# -------------------------------------------------------------- WebSocket


@dataclass
class Conn:
    query: dict[str, str]
    ws: ServerConnection
    messages: list[dict[str, Any]] = field(default_factory=list)
    frames: list[list[int]] = field(default_factory=list)  # fragment sizes of each message

    def audio(self) -> list[tuple[int, bytes]]:
        return [(m["seq"], base64.b64decode(m["data"])) for m in self.messages if m.get("action") == "sendAudio"]

    def actions(self) -> list[str]:
        return [m.get("action", "?") for m in self.messages]


class FakeGateway:
    """Stands in for the API Gateway WebSocket API: records handshakes and
    messages, answers heartbeat/pause/resume, and can refuse, hold or drop."""

    def __init__(self) -> None:
        self.handshakes: list[dict[str, str]] = []
        self.connections: list[Conn] = []
        self.refuse: Callable[[dict[str, str]], int | None] | None = None
        self.hold: asyncio.Event | None = None
        self.answer_heartbeats = True
        self.url = ""
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> Self:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._process_request,
                                   compression=None, max_size=None, ping_interval=None)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/dev"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(predicate), timeout)

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        query = dict(parse_qsl(urlsplit(request.path).query))
        self.handshakes.append(query)
        await self._notify()
        status = self.refuse(query) if self.refuse else None
        if status:
            return connection.respond(HTTPStatus(status), f"{HTTPStatus(status).phrase}\n")
        if self.hold is not None:
            await self.hold.wait()
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = Conn(dict(parse_qsl(urlsplit(ws.request.path).query)), ws)
        self.connections.append(conn)
        await self._notify()
        try:
            while True:
                fragments = [fragment async for fragment in ws.recv_streaming()]
                conn.frames.append([len(f) for f in fragments])
                message = json.loads("".join(str(f) for f in fragments))
                conn.messages.append(message)
                await self._notify()
                action = message.get("action")
                if action == "heartbeat" and self.answer_heartbeats:
                    await ws.send(json.dumps({"type": "heartbeatAck", "serverTime": 1_700_000_000_000}))
                elif action in ("pause", "resume"):
                    await ws.send(json.dumps({"type": "status", "sessionId": conn.query.get("sessionId"),
                                              "status": "paused" if action == "pause" else "active",
                                              "listenerCount": 2}))
        except ConnectionClosed:
            await ws.wait_closed()
        finally:
            await self._notify()

    # ---------------------------------------------------------------- views

    def audio(self) -> list[tuple[int, bytes]]:
        """(seq, bytes) of every audio message, across connections, in arrival order."""
        return [chunk for conn in self.connections for chunk in conn.audio()]

    def seqs(self) -> list[int]:
        return [seq for seq, _ in self.audio()]

    def open_connections(self) -> list[Conn]:
        from websockets.protocol import State

        return [c for c in self.connections if c.ws.state is State.OPEN]
