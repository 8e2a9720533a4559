"""Status messages to every socket of a session when its status or listener
count changes, whoever changed it (HTTP, WebSocket, teardown).

Fed by the table's stream: a batch is reduced to the latest state of each
session, so a burst of joins costs one message per socket, not one per join.
"""

from __future__ import annotations

import time
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


def changed_sessions(records: list[dict]) -> dict[str, dict]:
    """sessionId -> status message, for session items whose status or listener count changed."""
    latest: dict[str, dict] = {}
    for session_id, (status, count), before in stored_sessions.written_states(records):
        if status == ENDED:
            latest.pop(session_id, None)  # teardown says goodbye instead
            continue
        if before == (status, count):
            continue
        latest[session_id] = {"type": "status", "sessionId": session_id, "status": status, "listenerCount": count}
    return latest


def broadcast(session_id: str, message: dict) -> Delivery:
    """Posts `message` to each connection of the session; drops the gone ones.
    A gone listener whose record this removed counts as ListenerLeft (its own
    $disconnect then finds nothing, so each leave counts once)."""
    sent = gone = connecting = listeners_left = 0
    connecting_since = int(time.time()) - CONNECTING_SECONDS
    with ThreadPoolExecutor(POST_THREADS) as pool:
        for page in stored_connections.pages(session_id):
            results = pool.map(lambda c: (c, management.offer(c["connectionId"], message)), page)
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


def broadcast_changes(records: list[dict]) -> dict:
    """Tells the sockets of each session the stream records changed its new state; the batch's summary."""
    changed = changed_sessions(records)
    sent = gone = 0
    for session_id, message in changed.items():
        delivery = broadcast(session_id, message)
        sent, gone = sent + delivery.sent, gone + delivery.gone
        logger.info("status broadcast", extra={"sessionId": session_id, **delivery._asdict()})
    return {"sessions": len(changed), "sent": sent, "gone": gone}
