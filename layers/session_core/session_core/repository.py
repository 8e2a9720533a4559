"""Sessions in DynamoDB.

Item layout (one table shared with the WebSocket API):
  pk = "SESSION#<sessionId>", sk = "META"             the session
  pk = "SESSION#<sessionId>", sk = "CONN#<connId>"    its connections (later)
Every write is a single conditional request, so concurrent writers never lose
each other's changes and no read-modify-write window exists.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from . import errors
from .aws import client
from .domain import ACTIVE, ENDED
from .observability import logger

if TYPE_CHECKING:
    from .models import Session

META = "META"


def session_key(session_id: str) -> dict:
    return {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": META}}


def to_item(session: Session) -> dict:
    item = {
        **session_key(session.sessionId),
        "sessionId": {"S": session.sessionId},
        "speakerId": {"S": session.speakerId},
        "sourceLanguage": {"S": session.sourceLanguage},
        "qualityTier": {"S": session.qualityTier},
        "status": {"S": session.status},
        "partialResultsEnabled": {"BOOL": session.partialResultsEnabled},
        "minStabilityThreshold": {"N": str(session.minStabilityThreshold)},
        "maxBufferTimeout": {"N": str(session.maxBufferTimeout)},
        "listenerCount": {"N": str(session.listenerCount)},
        "createdAt": {"N": str(session.createdAt)},
        "updatedAt": {"N": str(session.updatedAt)},
        "expiresAt": {"N": str(session.expiresAt)},
        "version": {"N": str(session.version)},
    }
    if session.endedAt is not None:
        item["endedAt"] = {"N": str(session.endedAt)}
    return item


def attribute_value(attr: dict):
    if "S" in attr:
        return attr["S"]
    if "BOOL" in attr:
        return attr["BOOL"]
    number = attr["N"]
    return float(number) if "." in number or "e" in number.lower() else int(number)


def from_item(item: dict) -> Session:
    # pydantic loads with the first session read, not at import: $connect and $disconnect
    # only write (their conditions check the session) and start without it.
    from .models import Session

    values = {}
    for name in Session.model_fields:
        attr = item.get(name)
        if attr is not None:
            values[name] = attribute_value(attr)
    return Session.model_validate(values)


class SessionIdTaken(Exception):
    """The candidate session ID is already in use."""


class SessionAlreadyEnded(errors.SessionEnded):
    """SESSION_ENDED, carrying the ended session as the failed write returned it: callers that
    act on an ended session (restarting its teardown) need no second read, nor the right to one."""

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session


class SessionRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def create(self, session: Session) -> None:
        try:
            client("dynamodb").put_item(
                TableName=self.table_name,
                Item=to_item(session),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise SessionIdTaken(session.sessionId) from None
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None

    def get(self, session_id: str, now: int) -> Session:
        try:
            item = client("dynamodb").get_item(TableName=self.table_name, Key=session_key(session_id)).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        # TTL deletes lazily, so an expired item may still be there.
        if item is None or int(item["expiresAt"]["N"]) <= now:
            raise errors.SessionNotFound()
        return from_item(item)

    def update(self, session_id: str, caller_id: str, changes: dict[str, str], now: int,
               expected_version: int | None = None) -> Session:
        """Applies `changes` if the caller owns the live, not-ended session.

        Raises SessionNotFound, Forbidden, SessionEnded or VersionConflict,
        decided from the item DynamoDB returns when the condition fails.
        """
        values = {f":{name}": {"S": value} for name, value in changes.items()}
        sets = [f"#{name} = :{name}" for name in changes]
        if changes.get("status") == ENDED:
            sets.append("endedAt = :now")
        elif changes.get("status") == ACTIVE:
            # Paused audio is forwarded relative to this moment (see audio.py).
            sets.append("resumedAt = :now")
        condition = "attribute_exists(pk) AND speakerId = :caller AND #status <> :ended AND expiresAt > :now"
        if expected_version is not None:
            condition += " AND version = :expected"
            values[":expected"] = {"N": str(expected_version)}
        values |= {":caller": {"S": caller_id}, ":ended": {"S": ENDED}, ":now": {"N": str(now)},
                   ":one": {"N": "1"}}
        names = {f"#{name}": name for name in changes} | {"#status": "status"}
        try:
            result = client("dynamodb").update_item(
                TableName=self.table_name,
                Key=session_key(session_id),
                UpdateExpression=f"SET {', '.join([*sets, 'updatedAt = :now'])} ADD version :one",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise unavailable(exc) from None
            raise _refusal(exc.response.get("Item"), caller_id, now, expected_version) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None
        return from_item(result["Attributes"])


def _refusal(item: dict | None, caller_id: str, now: int, expected_version: int | None) -> errors.ServiceError:
    if item is None or int(item["expiresAt"]["N"]) <= now:
        return errors.SessionNotFound()
    if item["speakerId"]["S"] != caller_id:
        return errors.Forbidden()
    if item["status"]["S"] == ENDED:
        return SessionAlreadyEnded(from_item(item))
    if expected_version is not None and int(item["version"]["N"]) != expected_version:
        return errors.VersionConflict()
    # Unreachable unless the item changed shape; still answer something true.
    return errors.VersionConflict("The session changed while it was being updated; retry.")


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def unavailable(exc: Exception) -> errors.ServiceUnavailable:
    # Throttling and transient faults have already been retried by botocore;
    # anything else is still not the caller's fault, so it is a 503 either way.
    code = error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
    operation = getattr(exc, "operation_name", None)
    logger.error("AWS request failed", extra={"awsErrorCode": code, "awsOperation": operation})
    return errors.ServiceUnavailable()
