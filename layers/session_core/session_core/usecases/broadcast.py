"""Status messages to every socket of a session when its status, listener
count or mute changes, whoever changed it (HTTP, WebSocket, teardown), each in
its connection's dialect (the caller shapes them: api/dialects/).

Fed by the table's stream: a batch is reduced to the latest state of each
session, so a burst of joins costs one message per socket, not one per join.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..data import connections as stored_connections
from ..data import sessions as stored_sessions
from ..domain import ENDED, LISTENER
from ..platform import management
from ..platform.observability import logger, metric

# Posting is network-bound; a few threads keep a 500-listener fan-out short.
POST_THREADS = 16
# API Gateway answers 410 to a post to a connection whose $connect has not returned yet, and the
# join's own write can reach this broadcast in that window: a record younger than the longest
# $connect (the 29 s integration timeout) that answers 410 is kept. If that socket never opens, its
# record is dropped by a later broadcast or by the teardown.
CONNECTING_SECONDS = 30


class Delivery(NamedTuple):
    sent: int
    gone: int  # answered 410: record dropped
    connecting: int  # answered 410 while possibly still connecting: record kept


class StatusChange(NamedTuple):
    """A session's new state, and what it was before the batch (None: a new session)."""

    sessionId: str
    status: str
    listenerCount: int
    muted: bool
    languages: dict[str, int]  # listeners by language
    before: tuple[str, int, bool] | None  # (status, listenerCount, muted)

    def status_changed(self) -> bool:
        return self.before is None or self.before[0] != self.status

    def muted_changed(self) -> bool:
        return self.before is not None and self.before[2] != self.muted


# What a connection ({connectionId, role, connectedAt, dialect}) is told of a change; None: nothing.
Shape = Callable[[dict, StatusChange], "dict | None"]


def changed_sessions(records: list[dict]) -> dict[str, StatusChange]:
    """sessionId -> its change, for session items whose status, listener count or mute changed in the batch."""
    first: dict[str, tuple | None] = {}
    latest: dict[str, StatusChange] = {}
    for session_id, (status, count, muted), before, languages in stored_sessions.written_states(records):
        first.setdefault(session_id, before)
        if status == ENDED:
            latest.pop(session_id, None)  # teardown says goodbye instead
            continue
        if first[session_id] == (status, count, muted):
            latest.pop(session_id, None)  # back where the batch found it
            continue
        latest[session_id] = StatusChange(session_id, status, count, muted, languages, first[session_id])
    return latest


def broadcast(session_id: str, message: dict | Callable[[dict], dict | None]) -> Delivery:
    """Posts `message` (or what it makes of each connection) to each connection of the session; drops the
    gone ones. A gone listener whose record this removed counts as ListenerLeft (its own $disconnect then
    finds nothing, so each leave counts once)."""
    sent = gone = connecting = listeners_left = 0
    connecting_since = int(time.time()) - CONNECTING_SECONDS
    shaped = message if callable(message) else (lambda connection: message)
    with ThreadPoolExecutor(POST_THREADS) as pool:
        for page in stored_connections.pages(session_id):
            told = [(c, m) for c in page if (m := shaped(c)) is not None]
            results = pool.map(lambda pair: (pair[0], management.offer(pair[0]["connectionId"], pair[1])), told)
            for connection, delivered in results:
                if delivered:
                    sent += 1
                elif delivered is None:
                    continue  # a transient failure on one socket must not hold back the others
                elif connection["connectedAt"] > connecting_since:
                    connecting += 1
                else:
                    gone += 1
                    removed = stored_connections.remove(session_id, connection["connectionId"], connection["role"])
                    listeners_left += removed and connection["role"] == LISTENER
    if listeners_left:
        metric("ListenerLeft", listeners_left)
    return Delivery(sent, gone, connecting)


def broadcast_changes(records: list[dict], shape: Shape) -> dict:
    """Tells the sockets of each session the stream records changed its new state, each as `shape` says;
    the batch's summary."""
    changed = changed_sessions(records)
    sent = gone = 0
    for session_id, change in changed.items():
        delivery = broadcast(session_id, lambda connection, change=change: shape(connection, change))
        sent, gone = sent + delivery.sent, gone + delivery.gone
        logger.info("status broadcast", extra={"sessionId": session_id, **delivery._asdict()})
    return {"sessions": len(changed), "sent": sent, "gone": gone}
