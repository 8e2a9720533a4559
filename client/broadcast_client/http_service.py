"""The HTTP session API: create, read, change and end sessions.

Retries: 5xx, 429 and network errors are retried up to ``RetryPolicy.max_retries``
times with full-jitter backoff, obeying Retry-After; other 4xx never are. A
401 triggers one token refresh and one more try.

Offline queue: when the service cannot be reached at all (connection refused,
DNS failure, connect timeout, or Cognito unreachable), create/update/delete are
queued and the call raises OperationQueued (reads raise NetworkUnavailable:
a stale answer later is no use). The queue is replayed in order by ``flush()``
and before the next call, so a later call never overtakes a queued one. An
operation leaves the queue once the server has answered it, with success or
error; replays reuse the operation's headers, so a create carries the same
Idempotency-Key every time and never creates twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random as _random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx

from .auth import DEFAULT_REFRESH_MARGIN, TokenManager, TokenProvider
from .errors import (
    BroadcastClientError,
    ConfigurationError,
    NetworkUnavailable,
    OperationQueued,
    QueueFull,
    SessionApiError,
    api_error,
)
from .models import Access, QualityTier, Session, SessionStatus
from .offline import ApiRequest, PendingOperation
from .retry import RetryPolicy, parse_retry_after

log = logging.getLogger("broadcast_client.http")

T = TypeVar("T")

DEFAULT_RETRY = RetryPolicy()
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
# The request never reached the server: safe to queue and replay.
UNREACHABLE = (httpx.ConnectError, httpx.ConnectTimeout)


class _Unreachable(Exception):
    """Internal: the last try could not reach the service."""


def _final(response: httpx.Response) -> bool:
    """A 429 that waiting cannot help: the user's live sessions at the service's cap (not API Gateway's throttling)."""
    if response.status_code != 429:
        return False
    try:
        return response.json()["error"]["code"] == "SESSION_LIMIT_REACHED"
    except (ValueError, KeyError, TypeError):
        return False


def _session(response: httpx.Response) -> Session:
    try:
        return Session.from_json(response.json())
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SessionApiError(response.status_code, "INVALID_RESPONSE",
                              "The session service answered with a body that is not a session.",
                              response.headers.get("apigw-requestid")) from None


def _nothing(response: httpx.Response) -> None:
    return None


class SessionHttpService:
    """Async client of the session API (docs/openapi.yaml).

    ``base_url`` defaults to the SESSION_API_URL environment variable (the
    stack output HttpApiUrl, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/dev).
    ``max_queued`` bounds the offline queue (0 turns it off: unreachable means
    NetworkUnavailable). ``transport``, ``clock`` (epoch seconds), ``sleep`` and
    ``random`` exist for tests.
    """

    def __init__(self, base_url: str | None = None, *, token_provider: TokenProvider,
                 retry: RetryPolicy = DEFAULT_RETRY, max_queued: int = 100, timeout: float = 10.0,
                 refresh_margin: float = DEFAULT_REFRESH_MARGIN,
                 transport: httpx.AsyncBaseTransport | None = None,
                 clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 random: Callable[[], float] = _random.random) -> None:
        base_url = base_url or os.environ.get("SESSION_API_URL", "")
        if not base_url.startswith(("http://", "https://")):
            raise ConfigurationError("No session API URL: pass base_url or set SESSION_API_URL "
                                     "(the stack output HttpApiUrl, e.g. https://abc.execute-api.eu-west-1"
                                     ".amazonaws.com/dev).")
        if max_queued < 0:
            raise ValueError("max_queued must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._tokens = TokenManager(token_provider, clock=clock, refresh_margin=refresh_margin)
        self._retry = retry
        self._max_queued = max_queued
        self._clock, self._sleep, self._random = clock, sleep, random
        self._queue: deque[PendingOperation[Any]] = deque()
        self._replay_lock = asyncio.Lock()
        self._client = httpx.AsyncClient(base_url=self.base_url + "/", transport=transport,
                                         timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
                                         headers={"Accept": "application/json"})

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # ------------------------------------------------------------ operations

    async def create_session(self, source_language: str, quality_tier: QualityTier = "standard", *,
                             partial_results_enabled: bool | None = None,
                             min_stability_threshold: float | None = None, max_buffer_timeout: float | None = None,
                             access: Access | None = None, idempotency_key: str | None = None) -> Session:
        """POST /sessions. The partial-results settings and the access ("link": anonymous
        listeners need the session's join key, returned in ``Session.join_key``; "public")
        are sent when given (the service's defaults otherwise: true, 0.85, 5.0 s, link).
        The Idempotency-Key (a new uuid4 unless given) is sent on every retry and replay
        of this call, so the session is created once."""
        body: dict[str, Any] = {"sourceLanguage": source_language, "qualityTier": quality_tier}
        if access is not None:
            body["access"] = access
        body |= {name: value for name, value in (("partialResultsEnabled", partial_results_enabled),
                                                 ("minStabilityThreshold", min_stability_threshold),
                                                 ("maxBufferTimeout", max_buffer_timeout)) if value is not None}
        request = ApiRequest("POST", "sessions", body, {"Idempotency-Key": idempotency_key or str(uuid.uuid4())})
        return await self._call(f"create a {source_language} session", request, _session, queueable=True)

    async def get_session(self, session_id: str) -> Session:
        return await self._call(f"read session {session_id}", ApiRequest("GET", _path(session_id)), _session,
                                queueable=False)

    async def update_session(self, session_id: str, *, status: SessionStatus | None = None,
                             source_language: str | None = None, quality_tier: QualityTier | None = None,
                             if_match: int | None = None) -> Session:
        """PATCH /sessions/{id} with the given fields; ``if_match`` is the version last read."""
        changes = {name: value for name, value in (("status", status), ("sourceLanguage", source_language),
                                                   ("qualityTier", quality_tier)) if value is not None}
        if not changes:
            raise ValueError("give at least one of status, source_language, quality_tier")
        headers = {"If-Match": f'"{if_match}"'} if if_match is not None else {}
        return await self._call(f"update session {session_id}",
                                ApiRequest("PATCH", _path(session_id), changes, headers), _session, queueable=True)

    async def delete_session(self, session_id: str) -> None:
        """DELETE /sessions/{id}: ends the session (ending an ended one is fine too)."""
        await self._call(f"end session {session_id}", ApiRequest("DELETE", _path(session_id)), _nothing,
                         queueable=True)

    # ----------------------------------------------------------------- queue

    @property
    def pending(self) -> tuple[PendingOperation[Any], ...]:
        """Operations waiting for the service, oldest first."""
        return tuple(self._queue)

    async def flush(self) -> list[PendingOperation[Any]]:
        """Replays queued operations in order until the queue is empty or the
        service is still unreachable. Returns the operations that completed
        (each holds its result or error; see PendingOperation.wait)."""
        async with self._replay_lock:
            return await self._replay()

    async def _replay(self) -> list[PendingOperation[Any]]:
        completed: list[PendingOperation[Any]] = []
        while self._queue:
            # Out of the queue while in flight, so cancel() cannot pull it from under us.
            operation = self._queue.popleft()
            try:
                response = await self._send(operation._request)
            except _Unreachable:
                self._queue.appendleft(operation)
                break
            except asyncio.CancelledError:
                self._queue.appendleft(operation)
                raise
            except BroadcastClientError as exc:
                operation._finish(error=exc)
            else:
                try:
                    operation._finish(self._parse(response, operation._parse))
                except SessionApiError as exc:
                    operation._finish(error=exc)
            completed.append(operation)
            log.info("replayed queued operation: %s", operation.description)
        return completed

    def _enqueue(self, description: str, request: ApiRequest,
                 parse: Callable[[httpx.Response], T]) -> NetworkUnavailable:
        if len(self._queue) >= self._max_queued:
            return QueueFull(f"The session service is unreachable and {len(self._queue)} operation(s) are "
                             f"already waiting (the limit); '{description}' was not queued.")
        operation: PendingOperation[T] = PendingOperation(description, request, parse)
        operation._queue = self._queue
        self._queue.append(operation)
        log.warning("session service unreachable; queued: %s (%s waiting)", description, len(self._queue))
        return OperationQueued(operation, len(self._queue))

    # ------------------------------------------------------------- requests

    async def _call(self, description: str, request: ApiRequest, parse: Callable[[httpx.Response], T], *,
                    queueable: bool) -> T:
        if self._queue:
            async with self._replay_lock:
                await self._replay()
                if self._queue:  # still unreachable: stay behind what is already waiting
                    raise self._offline(description, request, parse, queueable, None)
        try:
            response = await self._send(request)
        except _Unreachable as exc:
            raise self._offline(description, request, parse, queueable, exc.__cause__) from exc.__cause__
        return self._parse(response, parse)

    def _offline(self, description: str, request: ApiRequest, parse: Callable[[httpx.Response], T],
                 queueable: bool, cause: BaseException | None) -> NetworkUnavailable:
        if queueable and self._max_queued > 0:
            return self._enqueue(description, request, parse)
        if isinstance(cause, BroadcastClientError):  # no token: Cognito is unreachable
            return NetworkUnavailable(f"Cannot {description}: {cause}")
        reason = f": {_describe(cause)}" if cause else f" ({len(self._queue)} operation(s) waiting)"
        return NetworkUnavailable(f"Cannot {description}: the session service at {self.base_url} "
                                  f"is unreachable{reason}.")

    def _parse(self, response: httpx.Response, parse: Callable[[httpx.Response], T]) -> T:
        if response.is_success:
            return parse(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        raise api_error(response.status_code, body, response.headers.get("apigw-requestid"),
                        parse_retry_after(response.headers.get("Retry-After"), self._clock()))

    async def _send(self, request: ApiRequest) -> httpx.Response:
        """The final response after retries and at most one token refresh.
        Raises _Unreachable (from the cause) or NetworkUnavailable."""
        retries, refreshed = 0, False
        while True:
            try:
                token = await self._tokens.get()
            except NetworkUnavailable as exc:
                raise _Unreachable() from exc
            headers = {**request.headers, "Authorization": f"Bearer {token}"}
            try:
                response = await self._client.request(request.method, request.path, json=request.body,
                                                      headers=headers)
            except httpx.TransportError as exc:
                if retries < self._retry.max_retries:
                    delay = self._retry.backoff(retries, self._random)
                    retries += 1
                    log.info("%s %s failed (%s); retry %s in %.2fs", request.method, request.path,
                             _describe(exc), retries, delay)
                    await self._sleep(delay)
                    continue
                if isinstance(exc, UNREACHABLE):
                    raise _Unreachable() from exc
                raise NetworkUnavailable(f"The session service at {self.base_url} did not answer "
                                         f"{request.method} /{request.path}: {_describe(exc)}.") from exc
            status = response.status_code
            if status == 401 and not refreshed:
                refreshed = True
                if await self._tokens.rejected(token) is not None:
                    continue
                return response
            if status in RETRYABLE_STATUSES and retries < self._retry.max_retries and not _final(response):
                retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock())
                if retry_after is not None and retry_after > self._retry.max_retry_after:
                    return response  # too long to wait here; the error carries retry_after
                delay = self._retry.backoff(retries, self._random) if retry_after is None else retry_after
                retries += 1
                log.info("%s %s answered %s; retry %s in %.2fs", request.method, request.path, status,
                         retries, delay)
                await self._sleep(delay)
                continue
            return response


def _path(session_id: str) -> str:
    return "sessions/" + quote(session_id, safe="")


def _describe(exc: BaseException | None) -> str:
    text = str(exc) if exc else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
