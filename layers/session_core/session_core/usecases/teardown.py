"""Ending a session's sockets: the Step Functions teardown workflow
(statemachines/teardown.asl.json) and the two functions it calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from .. import errors
from ..data import connections as stored_connections
from ..data import live_sessions
from ..data import sessions as stored_sessions
from ..domain import LISTENER
from ..platform import management, workflow
from ..platform.observability import MetricUnit, logger, metric

if TYPE_CHECKING:
    from ..domain import Session

# Posting is network-bound: a batch of 50 closes in about two round trips.
POST_THREADS = 25
# A socket still connecting is waited for at most this long after its record was written (the longest
# $connect: API Gateway's 29 s integration timeout), so a batch waits at most ~30 s (the worker's timeout: 60 s).
CONNECTING_SECONDS = 30
FIRST_WAIT_SECONDS = 0.05
LONGEST_WAIT_SECONDS = 1.0


# A teardown that did not succeed is run again under the next name; Step Functions refuses a closed
# execution's name for 90 days. Past this many, something else is wrong: the DELETE answers 503.
MAX_ATTEMPTS = 10
# Closed without success: the sockets may still be open (TeardownFailedAlarm fires for FAILED).
NOT_DONE = frozenset({"FAILED", "TIMED_OUT", "ABORTED"})


def execution_name(session: Session, attempt: int = 1) -> str:
    # Unique per session incarnation (IDs may be reused after TTL), stable per
    # session, so a second start is refused by Step Functions as a duplicate.
    base = f"{session.sessionId}-{session.createdAt}"
    return base if attempt == 1 else f"{base}-{attempt}"


def start(session: Session) -> None:
    """Starts the teardown of an ended session; a second start is harmless while one runs or after one
    succeeded, and starts a new one after one failed, timed out or was stopped."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        name = execution_name(session, attempt)
        if workflow.start(name, {"sessionId": session.sessionId}):
            if attempt > 1:
                logger.warning("teardown started again", extra={"executionName": name, "attempt": attempt})
            return
        # This name was used: by a teardown that runs, succeeded, or did not succeed.
        if workflow.status(name) not in NOT_DONE:
            return
    logger.error("teardown attempts exhausted", extra={"attempts": MAX_ATTEMPTS})
    raise errors.ServiceUnavailable()


def ended_message(session_id: str) -> dict:
    """What this service's own clients are told before their socket closes."""
    return {"type": "sessionEnded", "sessionId": session_id, "message": "The speaker ended this session."}


def disconnect_batch(session_id: str, items: list[dict],
                     farewell: Callable[[str, str], dict] | None = None) -> int:
    """Drops each connection's record, then says sessionEnded to it and closes it (`items`: a batch of the
    workflow's Query page, connection items as stored, read by data/connections.from_item).
    Records go first so each socket's own $disconnect finds nothing: every
    listener leaves once, counted here (ListenerLeft) in one session write.
    A connection that is already gone (410) counts as closed, once its connect window has passed. Raises on any
    other failure so the workflow retries the batch; a retry finds the records
    gone, counts nothing again and re-posts, which a socket survives."""
    connections = [stored_connections.from_item(item) for item in items]
    ids = [connection.connectionId for connection in connections]
    # Each connection is told in its dialect (`farewell(session_id, dialect)`).
    dialects = {connection.connectionId: connection.dialect for connection in connections}

    # A connection whose $connect may not have returned answers 410 and opens afterwards: keep posting to it
    # until it is there or its connect window has passed (records before connectedAt was listed: not waited).
    opening_until = {connection.connectionId: connection.connectedAt + CONNECTING_SECONDS
                     for connection in connections}

    def close(connection_id: str) -> None:
        dialect = dialects[connection_id]
        message = farewell(session_id, dialect) if farewell else ended_message(session_id)
        wait = FIRST_WAIT_SECONDS
        while not management.post(connection_id, message):
            if time.time() + wait > opening_until[connection_id]:
                return  # gone, or never opened
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT_SECONDS)
        management.disconnect(connection_id)

    with ThreadPoolExecutor(POST_THREADS) as pool:
        existed = list(pool.map(lambda connection_id: stored_connections.forget(session_id, connection_id), ids))
        listeners_left = 0
        for connection, was_there in zip(connections, existed):
            if was_there and connection.role == LISTENER:
                listeners_left += 1
            elif was_there:
                stored_connections.release_speaker(session_id, connection.connectionId)
        if listeners_left:
            stored_connections.release_listeners(session_id, listeners_left)
            metric("ListenerLeft", listeners_left)  # here, not in the threads: one writer
        list(pool.map(close, ids))  # re-raises the first failure
    return len(connections)


def finish(session_id: str, started_at: str) -> int:
    """Marks the teardown complete, frees the session's place in its owner's cap (again: the end released it
    already unless that failed; a release is idempotent) and records the session's and the teardown's durations."""
    lifetime = stored_sessions.finish_teardown(session_id)
    if lifetime is None:
        return 0
    created, ended, speaker_id = lifetime
    live_sessions.release(speaker_id, session_id)
    duration = max(0, ended - created)
    metric("SessionDuration", duration, MetricUnit.Seconds)
    started = datetime.fromisoformat(started_at).timestamp()
    teardown_ms = max(0.0, (time.time() - started) * 1000)
    metric("TeardownDuration", teardown_ms, MetricUnit.Milliseconds)
    logger.info("teardown finished", extra={"sessionDurationSeconds": duration, "teardownMs": round(teardown_ms)})
    return duration
