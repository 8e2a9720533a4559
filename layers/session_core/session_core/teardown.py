"""Ending a session's sockets: the Step Functions teardown workflow
(statemachines/teardown.asl.json) and the two functions it calls."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from . import management
from .aws import client
from .connections import ConnectionRepository
from .models import LISTENER, Session
from .observability import MetricUnit, logger, metric
from .repository import error_code, session_key, unavailable
from .settings import settings

# Posting is network-bound: a batch of 50 closes in about two round trips.
POST_THREADS = 25


def execution_name(session: Session) -> str:
    # Unique per session incarnation (IDs may be reused after TTL), stable per
    # session, so a second start is refused by Step Functions as a duplicate.
    return f"{session.sessionId}-{session.createdAt}"


def start(session: Session) -> None:
    """Starts the teardown of an ended session; a second start is harmless."""
    try:
        client("stepfunctions").start_execution(
            stateMachineArn=os.environ["TEARDOWN_STATE_MACHINE_ARN"],
            name=execution_name(session),
            input=json.dumps({"sessionId": session.sessionId}),
        )
    except ClientError as exc:
        if error_code(exc) != "ExecutionAlreadyExists":
            raise unavailable(exc) from None
    except BotoCoreError as exc:
        raise unavailable(exc) from None


def disconnect_batch(session_id: str, connections: list[dict]) -> int:
    """Says sessionEnded to each connection, closes it and drops its record.
    A connection that is already gone (410) counts as closed. Raises on any
    other failure so the workflow retries the batch (every step is idempotent).
    Listeners whose record this batch removed count as ListenerLeft (their own
    $disconnect then finds nothing, so each leave counts once)."""
    repository_ = ConnectionRepository(settings().table_name)
    message = {"type": "sessionEnded", "sessionId": session_id,
               "message": "The speaker ended this session."}

    def close(connection: dict) -> bool:
        connection_id, role = connection["connectionId"]["S"], connection["role"]["S"]
        if management.post(connection_id, message):
            management.disconnect(connection_id)
        return repository_.remove(session_id, connection_id, role) and role == LISTENER

    with ThreadPoolExecutor(POST_THREADS) as pool:
        listeners_left = sum(pool.map(close, connections))  # re-raises the first failure
    if listeners_left:
        metric("ListenerLeft", listeners_left)  # here, not in the threads: one writer
    return len(connections)


def finish(session_id: str, started_at: str) -> int:
    """Marks the teardown complete and records the session's and the teardown's durations."""
    now = int(time.time())
    try:
        result = client("dynamodb").update_item(
            TableName=settings().table_name, Key=session_key(session_id),
            UpdateExpression="SET teardownCompletedAt = :now",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeValues={":now": {"N": str(now)}},
            ReturnValues="ALL_NEW",
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            logger.warning("session record gone before teardown finished")
            return 0
        raise unavailable(exc) from None
    item = result["Attributes"]
    created, ended = int(item["createdAt"]["N"]), int(item.get("endedAt", {"N": str(now)})["N"])
    duration = max(0, ended - created)
    metric("SessionDuration", duration, MetricUnit.Seconds)
    started = datetime.fromisoformat(started_at).timestamp()
    teardown_ms = max(0.0, (time.time() - started) * 1000)
    metric("TeardownDuration", teardown_ms, MetricUnit.Milliseconds)
    logger.info("teardown finished", extra={"sessionDurationSeconds": duration, "teardownMs": round(teardown_ms)})
    return duration
