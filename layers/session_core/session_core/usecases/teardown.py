"""Ending a session's sockets: the Step Functions teardown workflow
(statemachines/teardown.asl.json) and the two functions it calls."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from ..data import connections as stored_connections
from ..data import sessions as stored_sessions
from ..domain import LISTENER
from ..platform import management
from ..platform.aws import Declined, call
from ..platform.observability import MetricUnit, logger, metric
from ..platform.settings import settings

if TYPE_CHECKING:  # annotations only: the teardown functions start without pydantic
    from ..models import Session

# Posting is network-bound: a batch of 50 closes in about two round trips.
POST_THREADS = 25


def execution_name(session: Session) -> str:
    # Unique per session incarnation (IDs may be reused after TTL), stable per
    # session, so a second start is refused by Step Functions as a duplicate.
    return f"{session.sessionId}-{session.createdAt}"


def start(session: Session) -> None:
    """Starts the teardown of an ended session; a second start is harmless."""
    try:
        call("stepfunctions", "start_execution", expected=("ExecutionAlreadyExists",),
             stateMachineArn=settings().required("teardown_state_machine_arn"), name=execution_name(session),
             input=json.dumps({"sessionId": session.sessionId}))
    except Declined:
        pass  # started already: the execution name is the session's


def disconnect_batch(session_id: str, connections: list[dict]) -> int:
    """Drops each connection's record, then says sessionEnded to it and closes it.
    Records go first so each socket's own $disconnect finds nothing: every
    listener leaves once, counted here (ListenerLeft) in one session write.
    A connection that is already gone (410) counts as closed. Raises on any
    other failure so the workflow retries the batch; a retry finds the records
    gone, counts nothing again and re-posts, which a socket survives."""
    # `reason`: what the published clients read (the hybrid type file); `message`: what people read.
    message = {"type": "sessionEnded", "sessionId": session_id, "reason": "ended",
               "message": "The speaker ended this session.", "timestamp": int(time.time() * 1000)}
    ids = [connection["connectionId"]["S"] for connection in connections]

    def close(connection_id: str) -> None:
        if management.post(connection_id, message):
            management.disconnect(connection_id)

    with ThreadPoolExecutor(POST_THREADS) as pool:
        existed = list(pool.map(lambda connection_id: stored_connections.forget(session_id, connection_id), ids))
        listeners_left = 0
        for connection, was_there in zip(connections, existed):
            if was_there and connection["role"]["S"] == LISTENER:
                listeners_left += 1
            elif was_there:
                stored_connections.release_speaker(session_id, connection["connectionId"]["S"])
        if listeners_left:
            stored_connections.release_listeners(session_id, listeners_left)
            metric("ListenerLeft", listeners_left)  # here, not in the threads: one writer
        list(pool.map(close, ids))  # re-raises the first failure
    return len(connections)


def finish(session_id: str, started_at: str) -> int:
    """Marks the teardown complete and records the session's and the teardown's durations."""
    lifetime = stored_sessions.finish_teardown(session_id)
    if lifetime is None:
        return 0
    created, ended = lifetime
    duration = max(0, ended - created)
    metric("SessionDuration", duration, MetricUnit.Seconds)
    started = datetime.fromisoformat(started_at).timestamp()
    teardown_ms = max(0.0, (time.time() - started) * 1000)
    metric("TeardownDuration", teardown_ms, MetricUnit.Milliseconds)
    logger.info("teardown finished", extra={"sessionDurationSeconds": duration, "teardownMs": round(teardown_ms)})
    return duration
