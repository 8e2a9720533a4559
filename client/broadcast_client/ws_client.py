"""The live connection of a speaker or a listener to one existing session
(API Gateway WebSocket API). It never creates or ends sessions.

Connection life
  * A refused handshake (HTTP 401/403) or a close with code 1008 raises
    PolicyViolation and is never retried. After a 401 the token is refreshed
    once and the handshake tried once more, since an expired token is the
    usual cause on a reconnection.
  * Any other drop reconnects with the same sessionId, with full-jitter
    backoff, up to ``timing.reconnect.max_retries`` times (then ConnectionLost).
  * ``sessionEnded`` stops the client: the message is yielded, then
    ``messages()`` ends. SPEAKER_REPLACED stops it with SpeakerReplaced
    (reconnecting would take the session back from the newer connection).
  * API Gateway closes every socket after 2 hours, so the client replaces its
    connection after ``timing.max_connection_age`` (1 h 55 min): it finishes the send
    in progress, closes, and opens a new connection with a fresh token.
  * A heartbeat every ``timing.heartbeat_interval`` keeps the 10-minute idle timeout
    away; two heartbeats in a row without any message back mean the
    connection is dead, and it is replaced.

Audio delivery (the server does not acknowledge audio)
  * send_audio() numbers chunks with an increasing ``seq`` and appends them
    to an ordered outbox; one sender task sends the outbox in order, so the
    caller never waits for the network and nothing is reordered.
  * A chunk leaves the outbox only once ``send()`` returned without error. A
    chunk whose send raised stays first in line and is sent again on the next
    connection, before anything newer, and seq continues where it was: no gap
    and no reordering as far as the client can tell. The price is
    at-least-once: a chunk whose send raised may have reached the server and
    then arrives twice (same seq, so the pipeline can drop the repeat). A
    chunk that send() accepted just before the TCP connection died may still
    be lost; without server acknowledgements no client can tell.
  * While disconnected or reconnecting, audio waits in the outbox (up to
    ``limits.max_buffered_bytes``; beyond that send_audio raises BufferFull rather
    than drop audio silently).
  * API Gateway limits a message to 128 KB and a frame to 32 KB. A chunk
    whose message would exceed 128 KB is split into consecutive pieces, each
    with its own seq (pieces of the same byte stream, so the concatenation is
    unchanged); messages over 32 KB are sent as fragments of at most 32 KB.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random as _random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.client import process_exception
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .auth import DEFAULT_REFRESH_MARGIN, TokenManager, TokenProvider
from .errors import (
    BroadcastClientError,
    BufferFull,
    ConfigurationError,
    ConnectionLost,
    NetworkUnavailable,
    PolicyViolation,
    SpeakerReplaced,
    StreamClosed,
    WebSocketError,
)
from .models import Role
from .retry import RetryPolicy

log = logging.getLogger("broadcast_client.ws")

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway message payload limit
MAX_FRAME_BYTES = 32 * 1024  # API Gateway frame limit; larger messages must be fragmented
DEFAULT_MAX_CONNECTION_AGE = 115 * 60.0  # API Gateway closes every socket after 2 h
DEFAULT_HEARTBEAT_INTERVAL = 30.0
DEFAULT_RECONNECT = RetryPolicy(max_retries=10, base_delay=0.5, max_delay=30.0)
UNANSWERED_HEARTBEATS_LIMIT = 2
RETRYABLE_HANDSHAKE_STATUSES = frozenset({429, 500, 502, 503, 504})
# Server close codes after which reconnecting would only repeat the failure.
FATAL_CLOSE_CODES = {1003: "unsupported data", 1007: "invalid message", 1008: "policy violation",
                     1009: "message too big"}
HEARTBEAT = json.dumps({"action": "heartbeat"})
# {"action":"sendAudio","seq":<up to 20 digits>,"data":"<base64>"}
_AUDIO_OVERHEAD = len('{"action":"sendAudio","seq":,"data":""}') + 20

_REFUSED = {
    401: "The live connection to session {id} was refused (HTTP 401): the token is missing, expired or "
         "issued for another stack.",
    403: "The live connection to session {id} was refused (HTTP 403): the session does not exist, has ended "
         "or is full, or it belongs to another speaker.",
}

ServerMessage = dict[str, Any]
Connector = Callable[..., Awaitable[ClientConnection]]


@dataclass(frozen=True, kw_only=True)
class ConnectionLimits:
    """How much the client holds and how large what it sends may be (API Gateway's limits by default)."""

    max_buffered_bytes: int = 32 * 1024 * 1024  # audio waiting to be sent; beyond it send_audio raises BufferFull
    max_chunk_bytes: int | None = None  # audio pieces at most this long (None: as long as a message carries)
    max_message_bytes: int = MAX_MESSAGE_BYTES
    max_frame_bytes: int = MAX_FRAME_BYTES
    max_inbox: int = 1000  # server messages kept for messages(); the oldest go first

    def __post_init__(self) -> None:
        if self.max_message_bytes <= _AUDIO_OVERHEAD + 4:
            raise ValueError("max_message_bytes is too small for any audio")


@dataclass(frozen=True, kw_only=True)
class ConnectionTiming:
    """When the client heartbeats, replaces its connection, retries, gives up and refreshes its token."""

    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    max_connection_age: float = DEFAULT_MAX_CONNECTION_AGE
    reconnect: RetryPolicy = DEFAULT_RECONNECT  # after a drop
    connect_retries: int = 2  # of the first connection
    open_timeout: float = 10.0
    refresh_margin: float = DEFAULT_REFRESH_MARGIN  # a token this close to expiry is refreshed first


@dataclass(frozen=True, kw_only=True)
class ConnectionCallbacks:
    """What the client calls for the time, waits, jitter and sockets: the real ones, or a test's fakes."""

    clock: Callable[[], float] = time.time  # epoch seconds, for token expiry
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    random: Callable[[], float] = _random.random
    connector: Connector = ws_connect


class _Transient(Exception):
    """Internal: this connection attempt failed in a way worth retrying."""


class WebSocketClient:
    """One speaker's or listener's connection to a session; see the module docstring.

    ``async with WebSocketClient(url, session_id, role="speaker", token_provider=p) as live:``
    connects on entry and closes on exit. ``limits``, ``timing`` and ``callbacks``
    (ConnectionLimits, ConnectionTiming, ConnectionCallbacks) change the defaults;
    the callbacks exist for tests.
    """

    def __init__(self, url: str, session_id: str, *, role: Role = "listener",
                 token_provider: TokenProvider | None = None, target_language: str | None = None,
                 join_key: str | None = None, first_seq: int = 0, limits: ConnectionLimits | None = None,
                 timing: ConnectionTiming | None = None, callbacks: ConnectionCallbacks | None = None) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigurationError(f"The WebSocket URL must start with ws:// or wss:// (got {url!r}); "
                                     f"it is the stack output WebSocketUrl.")
        if not session_id:
            raise ValueError("session_id is required: create the session over HTTP first")
        if role not in ("speaker", "listener"):
            raise ValueError("role must be 'speaker' or 'listener'")
        if role == "speaker" and token_provider is None:
            raise ValueError("a speaker needs a token_provider")
        limits, timing = limits or ConnectionLimits(), timing or ConnectionTiming()
        callbacks = callbacks or ConnectionCallbacks()
        self.url = url
        self.session_id = session_id
        self.role = role
        self.target_language = target_language
        # A link session's key (Session.join_key, or the listener link's `key`): an anonymous listener
        # needs it; a signed-in one joins by the session ID alone.
        self.join_key = join_key
        self._tokens = (TokenManager(token_provider, clock=callbacks.clock, refresh_margin=timing.refresh_margin)
                        if token_provider else None)
        self._heartbeat_interval = timing.heartbeat_interval
        self._max_age = timing.max_connection_age
        self._reconnect = timing.reconnect
        self._connect_retries = timing.connect_retries
        self._open_timeout = timing.open_timeout
        self._max_buffered = limits.max_buffered_bytes
        piece = (limits.max_message_bytes - _AUDIO_OVERHEAD) // 4 * 3
        self._max_piece = min(piece, limits.max_chunk_bytes) if limits.max_chunk_bytes else piece
        self._max_frame = limits.max_frame_bytes
        self._sleep, self._random, self._connector = callbacks.sleep, callbacks.random, callbacks.connector

        self._next_seq = first_seq
        self._outbox: deque[str] = deque()
        self._buffered_bytes = 0
        self._outbox_empty = asyncio.Event()
        self._outbox_empty.set()
        self._wakeup = asyncio.Event()  # something to send, or stop sending
        self._stop_sending = False
        self._inbox: deque[ServerMessage] = deque(maxlen=limits.max_inbox)
        self._inbox_ready = asyncio.Event()
        self._rotate = asyncio.Event()
        self._opened = asyncio.Event()
        self._heard = False
        # Heartbeats sent and acknowledged on the current connection: acks come back in order,
        # so the Nth ack means the server has handled everything sent before the Nth heartbeat.
        self._heartbeats_sent = 0
        self._acks = 0
        self._acked = asyncio.Event()

        self._supervisor: asyncio.Task[None] | None = None
        self._ws: ClientConnection | None = None
        self._connections = 0
        self._ended = False
        self._closed = False
        self._finished = False
        self._failure: BroadcastClientError | None = None
        self.last_server_time: int | None = None  # serverTime (ms) of the last heartbeatAck

    # ---------------------------------------------------------------- public

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def connected(self) -> bool:
        return self._ws is not None and not self._finished

    @property
    def connections(self) -> int:
        """How many connections were opened so far (1 + reconnections)."""
        return self._connections

    @property
    def next_seq(self) -> int:
        return self._next_seq

    @property
    def buffered(self) -> int:
        """Messages waiting to be sent (audio, pause, resume)."""
        return len(self._outbox)

    @property
    def session_ended(self) -> bool:
        return self._ended

    async def connect(self) -> None:
        """Opens the first connection; raises PolicyViolation, ConnectionLost or AuthenticationFailed."""
        if self._supervisor is not None or self._closed:
            raise RuntimeError("connect() can be called once, before close()")
        ws = await self._open_with_retry(retries=self._connect_retries, immediate=True)
        self._opened_connection(ws)
        self._supervisor = asyncio.create_task(self._supervise(ws), name=f"broadcast-live-{self.session_id}")

    async def send_audio(self, chunk: bytes) -> range:
        """Queues a chunk (split if its message would exceed 128 KB) and returns its seq numbers.

        Does not wait for the network; use drain() to wait until everything was sent.
        """
        self._check_can_send(speaker_only=True)
        first = self._next_seq
        pieces = [chunk[i:i + self._max_piece] for i in range(0, len(chunk), self._max_piece)]
        frames = [json.dumps({"action": "sendAudio", "seq": first + n, "data": base64.b64encode(piece).decode()},
                             separators=(",", ":")) for n, piece in enumerate(pieces)]
        size = sum(len(frame) for frame in frames)
        if self._buffered_bytes + size > self._max_buffered:
            raise BufferFull(f"{self._buffered_bytes} bytes of audio are already waiting for the connection; "
                             f"the chunk was not queued.")
        self._next_seq += len(frames)
        self._enqueue(frames, size)
        return range(first, self._next_seq)

    async def pause(self) -> None:
        """Asks the server to pause the session (its audio is held server-side); the new
        status arrives as a {"type": "status"} message. Ordered after audio already queued."""
        self._check_can_send(speaker_only=True)
        self._enqueue([json.dumps({"action": "pause"})])

    async def resume(self) -> None:
        self._check_can_send(speaker_only=True)
        self._enqueue([json.dumps({"action": "resume"})])

    async def drain(self) -> None:
        """Waits until everything queued was sent (raises if the client stops first)."""
        while self._outbox:
            if self._failure:
                raise self._failure
            if self._finished or self._closed:
                reason = "the session ended" if self._ended else "the connection is closed"
                raise StreamClosed(f"{len(self._outbox)} message(s) were not sent: {reason}.")
            await self._outbox_empty.wait()
        if self._failure:
            raise self._failure

    async def settle(self, timeout: float = 10.0) -> bool:
        """Waits until the server has handled everything sent so far (not just until it was
        written to the socket, as drain() does): a heartbeat queued behind the audio is answered
        once the messages before it were processed. Call it before ending a session, so its last
        chunks are not refused as SESSION_ENDED. Returns False if no answer came in `timeout`."""
        self._enqueue([HEARTBEAT])
        await self.drain()
        target, connection = self._heartbeats_sent, self._connections
        deadline = asyncio.get_running_loop().time() + timeout
        while self._acks < target and self._connections == connection and not self._finished:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            self._acked.clear()
            try:
                await asyncio.wait_for(self._acked.wait(), left)
            except TimeoutError:
                return False
        return self._acks >= target

    async def messages(self) -> AsyncIterator[ServerMessage]:
        """Status, error and other server messages (heartbeatAck excepted), in arrival order.

        Ends after yielding sessionEnded or after close(); raises the error that
        stopped the client (PolicyViolation, SpeakerReplaced, ConnectionLost).
        One consumer at a time.
        """
        while True:
            if self._inbox:
                yield self._inbox.popleft()
                continue
            if self._finished:
                if self._failure:
                    raise self._failure
                return
            self._inbox_ready.clear()
            await self._inbox_ready.wait()

    async def reconnect(self) -> None:
        """Replaces the connection now, as done before the 2-hour limit; queued audio waits meanwhile."""
        self._check_can_send(speaker_only=False)
        target = self._connections + 1
        self._rotate.set()
        while self._connections < target:
            if self._finished:
                self._check_can_send(speaker_only=False)
            self._opened.clear()
            await self._opened.wait()

    async def close(self) -> None:
        """Closes the connection (code 1000). Messages still queued are dropped; call drain() first."""
        self._closed = True
        ws, task = self._ws, self._supervisor
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        if ws is not None:
            await ws.close()  # the supervisor may have been cancelled before it ever ran
        self._finish()

    # -------------------------------------------------------------- outbox

    def _check_can_send(self, *, speaker_only: bool) -> None:
        if speaker_only and self.role != "speaker":
            raise RuntimeError("only a speaker connection sends audio, pause and resume")
        if self._supervisor is None and not self._closed:
            raise RuntimeError("call connect() first")
        if self._failure:
            raise self._failure
        if self._ended:
            raise StreamClosed(f"Session {self.session_id} has ended.")
        if self._closed or self._finished:
            raise StreamClosed("The live connection is closed.")

    def _enqueue(self, frames: list[str], size: int | None = None) -> None:
        self._outbox.extend(frames)
        self._buffered_bytes += size if size is not None else sum(len(f) for f in frames)
        if self._outbox:
            self._outbox_empty.clear()
        self._wakeup.set()

    def _fragments(self, frame: str) -> str | list[str]:
        if len(frame) <= self._max_frame:
            return frame
        return [frame[i:i + self._max_frame] for i in range(0, len(frame), self._max_frame)]

    # ---------------------------------------------------------- connection

    def _opened_connection(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._connections += 1
        self._rotate.clear()  # a replacement asked for while reconnecting is this connection
        self._opened.set()
        log.info("session %s: %s connection %s open", self.session_id, self.role, self._connections)

    def _finish(self) -> None:
        self._finished = True
        self._ws = None
        for event in (self._inbox_ready, self._outbox_empty, self._opened):
            event.set()

    async def _supervise(self, ws: ClientConnection) -> None:
        try:
            while True:
                rotated = await self._serve(ws)
                if self._failure or self._ended or self._closed:
                    return
                ws = await self._open_with_retry(retries=self._reconnect.max_retries, immediate=rotated)
                self._opened_connection(ws)
        except BroadcastClientError as exc:
            self._failure = exc
        except Exception as exc:  # a bug must not vanish inside a task
            log.exception("session %s: live connection failed", self.session_id)
            self._failure = WebSocketError(f"The live connection stopped unexpectedly: {exc!r}")
        finally:
            self._finish()

    async def _serve(self, ws: ClientConnection) -> bool:
        """Runs one connection until it drops, is replaced or the client stops.
        Returns True when it was replaced on purpose (age limit, reconnect())."""
        self._stop_sending = False
        self._heard = False
        self._heartbeats_sent = self._acks = 0
        reader = asyncio.create_task(self._read(ws))
        sender = asyncio.create_task(self._send_loop(ws))
        rotation = asyncio.create_task(self._rotate.wait())
        helpers = [asyncio.create_task(self._heartbeat(ws)), asyncio.create_task(self._age_out())]
        rotated = False
        try:
            done, _ = await asyncio.wait({reader, sender, rotation}, return_when=asyncio.FIRST_COMPLETED)
            if rotation in done and not reader.done():
                rotated = True
                self._stop_sending = True
                self._wakeup.set()
                await sender  # finishes the send in progress; the rest stays queued, in order
            await ws.close()
            await reader
            if sender.done():
                sender.result()  # surfaces a bug in the send loop
        finally:
            self._ws = None
            tasks = (reader, sender, rotation, *helpers)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ws.close()
        return rotated

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for raw in ws:
                self._heard = True
                message = _decode(raw)
                if message is None:
                    log.warning("session %s: ignoring a frame that is not a JSON object", self.session_id)
                    continue
                kind = message.get("type")
                if kind == "heartbeatAck":
                    self._acks += 1
                    self._acked.set()
                    server_time = message.get("serverTime")
                    self.last_server_time = server_time if isinstance(server_time, int) else None
                    continue
                self._deliver(message)
                if kind == "sessionEnded":
                    self._ended = True
                    return
                if kind == "error" and message.get("code") == "SPEAKER_REPLACED":
                    self._failure = SpeakerReplaced(f"Another connection of this speaker took over session "
                                                    f"{self.session_id}; this one stopped.")
                    return
        except ConnectionClosed:
            pass
        received = ws.protocol.close_rcvd
        if received is not None and received.code in FATAL_CLOSE_CODES and not (self._failure or self._ended):
            why = f"{FATAL_CLOSE_CODES[received.code]}{': ' + received.reason if received.reason else ''}"
            text = f"The server closed the live connection to session {self.session_id} ({received.code} {why})."
            self._failure = (PolicyViolation(text, close_code=received.code) if received.code == 1008
                             else WebSocketError(text))

    def _deliver(self, message: ServerMessage) -> None:
        if len(self._inbox) == self._inbox.maxlen:
            log.warning("session %s: messages() is not being read; dropping the oldest message", self.session_id)
        self._inbox.append(message)
        self._inbox_ready.set()

    async def _send_loop(self, ws: ClientConnection) -> None:
        while not self._stop_sending:
            if not self._outbox:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            frame = self._outbox[0]
            if frame == HEARTBEAT:
                self._heartbeats_sent += 1  # before sending: its answer may come back at once
            try:
                await ws.send(self._fragments(frame))
            except ConnectionClosed:
                if frame == HEARTBEAT:
                    self._heartbeats_sent -= 1
                return  # the frame stays first in line for the next connection
            self._outbox.popleft()
            self._buffered_bytes -= len(frame)
            if not self._outbox:
                self._outbox_empty.set()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        sent, unanswered = False, 0
        while True:
            await self._sleep(self._heartbeat_interval)
            unanswered = unanswered + 1 if sent and not self._heard else 0
            if unanswered >= UNANSWERED_HEARTBEATS_LIMIT:
                log.warning("session %s: %s heartbeats unanswered; replacing the connection",
                            self.session_id, unanswered)
                await ws.close()
                return
            self._heard = False
            self._heartbeats_sent += 1
            try:
                await ws.send(HEARTBEAT)
            except ConnectionClosed:
                return
            sent = True

    async def _age_out(self) -> None:
        await self._sleep(self._max_age)
        log.info("session %s: connection reached %.0fs; replacing it", self.session_id, self._max_age)
        self._rotate.set()

    async def _open_with_retry(self, *, retries: int, immediate: bool) -> ClientConnection:
        failures = 0
        while True:
            if failures or not immediate:
                await self._sleep(self._reconnect.backoff(failures, self._random))
            try:
                return await self._open()
            except _Transient as exc:
                failures += 1
                if failures > retries:
                    raise ConnectionLost(f"Cannot connect to the live session {self.session_id} "
                                         f"({failures} attempt(s)): {exc}") from None
                log.warning("session %s: connection attempt %s failed: %s", self.session_id, failures, exc)

    async def _open(self) -> ClientConnection:
        refreshed = False
        while True:
            token = None
            if self._tokens is not None:
                try:
                    token = await self._tokens.get()
                except NetworkUnavailable as exc:
                    raise _Transient(str(exc)) from None
            try:
                return await self._connector(self._url_for(token), open_timeout=self._open_timeout,
                                             ping_interval=None,  # the heartbeat route checks liveness
                                             close_timeout=5, compression=None, max_size=4 * MAX_MESSAGE_BYTES)
            except InvalidStatus as exc:
                status = exc.response.status_code
                if status == 401 and token and not refreshed and self._tokens is not None:
                    refreshed = True
                    if await self._tokens.rejected(token) is not None:
                        continue
                if status in _REFUSED:
                    raise PolicyViolation(_REFUSED[status].format(id=self.session_id), status=status) from None
                if status in RETRYABLE_HANDSHAKE_STATUSES:
                    raise _Transient(f"handshake answered HTTP {status}") from None
                raise WebSocketError(f"The live connection to session {self.session_id} was refused "
                                     f"with HTTP {status}.") from None
            except Exception as exc:  # noqa: BLE001 - classified just below
                # Tokens travel in the URL: never let it reach a message or a traceback.
                text = _redact(f"{type(exc).__name__}: {exc}", token)
                if process_exception(exc) is None:
                    raise _Transient(text) from None
                raise WebSocketError(f"Cannot open the live connection to session {self.session_id}: "
                                     f"{text}") from None

    def _url_for(self, token: str | None) -> str:
        parts = urlsplit(self.url)
        query = parse_qsl(parts.query) + [("sessionId", self.session_id), ("role", self.role)]
        if token:
            query.append(("token", token))
        if self.target_language and self.role == "listener":
            query.append(("targetLanguage", self.target_language))
        if self.join_key and self.role == "listener":
            query.append(("joinKey", self.join_key))
        return urlunsplit(parts._replace(query=urlencode(query)))


def _decode(raw: str | bytes) -> ServerMessage | None:
    """The JSON object of a text frame; None for a binary frame, for what is not JSON, and for other JSON."""
    try:
        message = json.loads(raw) if isinstance(raw, str) else None
    except ValueError:
        return None
    return message if isinstance(message, dict) else None


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text
