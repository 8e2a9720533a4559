"""WebSocket connections of a session, stored beside it in the sessions table.

  pk = "SESSION#<sessionId>", sk = "CONN#<connectionId>"

so a session's connections are one Query (paged by LastEvaluatedKey).

Joining and leaving are single-item writes, never transactions: DynamoDB
cancels concurrent transactions on one item, and a crowd joining one session
is exactly that (docs/architecture.md, "Listener count"). A join records the
connection first, then counts it on the session under the cap (undoing the
record if refused); a leave deletes the record and, only if it was there,
counts it off. The record is the guard: a connection removed twice
(disconnect racing a teardown or a 410) is counted off once.
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from . import errors
from .aws import client
from .domain import ENDED, LISTENER, SPEAKER
from .observability import logger
from .repository import error_code, session_key, unavailable

CONNECTION_PREFIX = "CONN#"
# API Gateway closes every connection after 2 hours; the record outlives it a little.
CONNECTION_TTL_SECONDS = 2 * 3600 + 600


def connection_key(session_id: str, connection_id: str) -> dict:
    return {"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"{CONNECTION_PREFIX}{connection_id}"}}


def _connection_item(session_id: str, connection_id: str, role: str, user_id: str, target_language: str,
                     now: int) -> dict:
    return {
        **connection_key(session_id, connection_id),
        "connectionId": {"S": connection_id},
        "sessionId": {"S": session_id},
        "role": {"S": role},
        "userId": {"S": user_id},
        "targetLanguage": {"S": target_language},
        "connectedAt": {"N": str(now)},
        "expiresAt": {"N": str(now + CONNECTION_TTL_SECONDS)},
    }


class ConnectionRepository:
    def __init__(self, table_name: str) -> None:
        self.table_name = table_name

    def add_listener(self, session_id: str, connection_id: str, user_id: str, target_language: str,
                     max_listeners: int) -> None:
        now = int(time.time())
        ddb = client("dynamodb")
        try:
            ddb.put_item(TableName=self.table_name, ConditionExpression="attribute_not_exists(pk)",
                         Item=_connection_item(session_id, connection_id, LISTENER, user_id, target_language, now))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return  # the same connection joined already (a retried $connect)
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None
        try:
            ddb.update_item(
                TableName=self.table_name,
                Key=session_key(session_id),
                UpdateExpression="ADD listenerCount :one",
                ConditionExpression="attribute_exists(pk) AND #status <> :ended AND expiresAt > :now "
                                    "AND listenerCount < :cap",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":ended": {"S": ENDED}, ":now": {"N": str(now)},
                                           ":cap": {"N": str(max_listeners)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except (ClientError, BotoCoreError) as exc:
            self._undo_join(session_id, connection_id)
            if isinstance(exc, ClientError) and error_code(exc) == "ConditionalCheckFailedException":
                raise _join_refusal(exc.response.get("Item"), now) from None
            raise unavailable(exc) from None

    def _undo_join(self, session_id: str, connection_id: str) -> None:
        """Drops the record of a join that was not counted (refused or failed)."""
        try:
            self.forget(session_id, connection_id)
        except (ClientError, BotoCoreError) as exc:
            # Left behind uncounted: a later removal would count it off once too often (floored at 0).
            logger.warning("uncounted connection record left behind", extra={"awsErrorCode": type(exc).__name__})

    def add_speaker(self, session_id: str, connection_id: str, user_id: str) -> str | None:
        """Makes this connection the session's speaker; returns the one it replaces."""
        now = int(time.time())
        ddb = client("dynamodb")
        try:
            result = ddb.update_item(
                TableName=self.table_name,
                Key=session_key(session_id),
                UpdateExpression="SET speakerConnectionId = :conn",
                ConditionExpression="attribute_exists(pk) AND speakerId = :user AND #status <> :ended "
                                    "AND expiresAt > :now",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":conn": {"S": connection_id}, ":user": {"S": user_id},
                                           ":ended": {"S": ENDED}, ":now": {"N": str(now)}},
                ReturnValues="UPDATED_OLD",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            ddb.put_item(TableName=self.table_name,
                         Item=_connection_item(session_id, connection_id, SPEAKER, user_id, "", now))
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise _join_refusal(exc.response.get("Item"), now, speaker_id=user_id) from None
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None
        previous = result.get("Attributes", {}).get("speakerConnectionId", {}).get("S")
        return previous if previous != connection_id else None

    def remove(self, session_id: str, connection_id: str, role: str) -> bool:
        """Deletes the connection record and counts a listener off; False if it was already gone."""
        if role != LISTENER:
            return self._remove_speaker(session_id, connection_id)
        try:
            if not self.forget(session_id, connection_id):
                return False
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        self._update_session_if(session_id, UpdateExpression="ADD listenerCount :minus",
                                ConditionExpression="attribute_exists(pk) AND listenerCount > :zero",
                                ExpressionAttributeValues={":minus": {"N": "-1"}, ":zero": {"N": "0"}})
        return True

    def _remove_speaker(self, session_id: str, connection_id: str) -> bool:
        existed = self.forget(session_id, connection_id)
        self.release_speaker(session_id, connection_id)
        return existed

    def release_speaker(self, session_id: str, connection_id: str) -> None:
        """Clears the session's speaker, unless a newer speaker connection took over already."""
        self._update_session_if(session_id, UpdateExpression="REMOVE speakerConnectionId",
                                ConditionExpression="speakerConnectionId = :conn",
                                ExpressionAttributeValues={":conn": {"S": connection_id}})

    # Teardown drops records one by one and then counts them off the session in one write.
    def forget(self, session_id: str, connection_id: str) -> bool:
        """Deletes a connection record without touching the session; True if it existed."""
        result = client("dynamodb").delete_item(TableName=self.table_name, Key=connection_key(session_id, connection_id),
                                                ReturnValues="ALL_OLD")
        return "Attributes" in result

    def release_listeners(self, session_id: str, count: int) -> None:
        """Takes `count` forgotten listeners off the ended session's listenerCount (unless the session is
        gone: TTL). A join that recorded its connection and was then refused because the session ended
        was never counted; if the teardown forgot its record, the count would go below zero: stop at 0."""
        if not self._update_session_if(session_id, UpdateExpression="ADD listenerCount :minus",
                                       ConditionExpression="attribute_exists(pk) AND listenerCount >= :count",
                                       ExpressionAttributeValues={":minus": {"N": str(-count)},
                                                                  ":count": {"N": str(count)}}):
            self._update_session_if(session_id, UpdateExpression="SET listenerCount = :zero",
                                    ConditionExpression="attribute_exists(pk) AND listenerCount < :count",
                                    ExpressionAttributeValues={":zero": {"N": "0"}, ":count": {"N": str(count)}})

    def _update_session_if(self, session_id: str, **update) -> bool:
        """One conditional write to the session item; a failed condition (False) means there is nothing to do."""
        try:
            client("dynamodb").update_item(TableName=self.table_name, Key=session_key(session_id), **update)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    def page(self, session_id: str, start_key: dict | None = None, limit: int = 100) -> tuple[list[dict], dict | None]:
        """One page of the session's connections: ({connectionId, role, connectedAt}, ...), next start key."""
        query = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{session_id}"}, ":prefix": {"S": CONNECTION_PREFIX}},
            "ProjectionExpression": "connectionId, #role, connectedAt",
            "ExpressionAttributeNames": {"#role": "role"},
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        try:
            result = client("dynamodb").query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        items = [{"connectionId": i["connectionId"]["S"], "role": i["role"]["S"],
                  "connectedAt": int(i.get("connectedAt", {"N": "0"})["N"])} for i in result.get("Items", [])]
        return items, result.get("LastEvaluatedKey")

    # A legacy connection created its session after $connect, so the
    # authorizer context does not name it: a pointer item does.
    def link_legacy(self, connection_id: str, session_id: str) -> None:
        now = int(time.time())
        try:
            client("dynamodb").put_item(TableName=self.table_name, Item={
                **_legacy_key(connection_id),
                "sessionId": {"S": session_id},
                "expiresAt": {"N": str(now + CONNECTION_TTL_SECONDS)},
            }, ConditionExpression="attribute_not_exists(pk)")
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise errors.AlreadyInSession() from None
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None

    def legacy_session_of(self, connection_id: str) -> str | None:
        try:
            item = client("dynamodb").get_item(TableName=self.table_name, Key=_legacy_key(connection_id),
                                               ConsistentRead=True).get("Item")
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        return item["sessionId"]["S"] if item else None

    def unlink_legacy(self, connection_id: str) -> None:
        try:
            client("dynamodb").delete_item(TableName=self.table_name, Key=_legacy_key(connection_id))
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None


def _join_refusal(session: dict | None, now: int, speaker_id: str | None = None) -> errors.ServiceError:
    """Why a join's conditional write failed, told from the session item DynamoDB returned with it."""
    if session is None or int(session["expiresAt"]["N"]) <= now:
        return errors.SessionNotFound()
    if speaker_id is not None and session["speakerId"]["S"] != speaker_id:
        return errors.NotSessionOwner()
    if session["status"]["S"] == ENDED:
        return errors.SessionEnded()
    return errors.SessionFull()  # a listener's last condition: the cap


def _legacy_key(connection_id: str) -> dict:
    return {"pk": {"S": f"LEGACY#{connection_id}"}, "sk": {"S": "SESSION"}}
