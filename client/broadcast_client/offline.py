"""The offline queue's types: a request as it is sent (and replayed), and a
create/update/delete waiting in the queue for the service to be reachable.

They live apart from SessionHttpService so that errors.OperationQueued can
name the operation it queued without the errors importing the HTTP client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")


@dataclass(frozen=True)
class ApiRequest:
    """One call of the session API; a replay sends the same one, headers included."""

    method: str
    path: str
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


class PendingOperation(Generic[T]):
    """A create/update/delete waiting in the offline queue."""

    def __init__(self, description: str, request: ApiRequest, parse: Callable[[httpx.Response], T]) -> None:
        self.description = description
        self._request = request
        self._parse = parse
        self._queue: deque[PendingOperation[Any]] | None = None
        self._done = asyncio.Event()
        self._result: T | None = None
        self._error: BaseException | None = None

    @property
    def idempotency_key(self) -> str | None:
        return self._request.headers.get("Idempotency-Key")

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def cancel(self) -> bool:
        """Takes the operation out of the queue; False if it already ran or is running."""
        if self._queue is None or self not in self._queue:
            return False
        self._queue.remove(self)
        self._finish(error=asyncio.CancelledError(f"{self.description} was cancelled"))
        return True

    async def wait(self) -> T:
        """The result once replayed; raises the operation's error (SessionApiError...)."""
        await self._done.wait()
        return self.result()

    def result(self) -> T:
        if not self.done:
            raise RuntimeError(f"{self.description} has not run yet")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]

    def _finish(self, result: T | None = None, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._done.set()

    def __repr__(self) -> str:
        return f"<PendingOperation {self.description!r} done={self.done}>"
