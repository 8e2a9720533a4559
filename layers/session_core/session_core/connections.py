"""WebSocket connections of a session, stored beside it in the sessions table.

  pk = "SESSION#<sessionId>", sk = "CONN#<connectionId>"

so a session's connections are one Query (paged by LastEvaluatedKey). The
listener count on the session item moves in the same transaction as the
connection item, so it always equals the number of listener items: a join
cannot pass the cap, a leave cannot go below zero, and a connection removed
twice (disconnect racing a teardown or a 410) is counted once.
"""

from __future__ import annotations

import time

from botocore.exceptions import BotoCoreError, ClientError

from . import errors
from .aws import client
from .domain import ENDED, LISTENER, SPEAKER
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
        try:
            client("dynamodb").transact_write_items(TransactItems=[
                {"Update": {
                    "TableName": self.table_name,
                    "Key": session_key(session_id),
                    "UpdateExpression": "ADD listenerCount :one",
                    "ConditionExpression": "attribute_exists(pk) AND #status <> :ended AND expiresAt > :now "
                                           "AND listenerCount < :cap",
                    "ExpressionAttributeNames": {"#status": "status"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}, ":ended": {"S": ENDED},
                                                  ":now": {"N": str(now)}, ":cap": {"N": str(max_listeners)}},
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }},
                {"Put": {
                    "TableName": self.table_name,
                    "Item": _connection_item(session_id, connection_id, LISTENER, user_id, target_language, now),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }},
            ])
        except ClientError as exc:
            reasons = exc.response.get("CancellationReasons") or []
            if error_code(exc) == "TransactionCanceledException" and reasons:
                session = reasons[0].get("Item")
                if reasons[0].get("Code") == "ConditionalCheckFailed":
                    if session is None or int(session["expiresAt"]["N"]) <= now:
                        raise errors.SessionNotFound() from None
                    if session["status"]["S"] == ENDED:
                        raise errors.SessionEnded() from None
                    raise errors.SessionFull() from None
                if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                    return  # the same connection joined already (a retried $connect)
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None

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
                item = exc.response.get("Item")
                if item is None or int(item["expiresAt"]["N"]) <= now:
                    raise errors.SessionNotFound() from None
                if item["speakerId"]["S"] != user_id:
                    raise errors.Forbidden() from None
                raise errors.SessionEnded() from None
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None
        previous = result.get("Attributes", {}).get("speakerConnectionId", {}).get("S")
        return previous if previous != connection_id else None

    def remove(self, session_id: str, connection_id: str, role: str) -> bool:
        """Deletes the connection record; False if it was already gone."""
        ddb = client("dynamodb")
        delete = {"TableName": self.table_name, "Key": connection_key(session_id, connection_id),
                  "ConditionExpression": "attribute_exists(pk)"}
        try:
            if role == LISTENER:
                ddb.transact_write_items(TransactItems=[
                    {"Delete": delete},
                    {"Update": {
                        "TableName": self.table_name,
                        "Key": session_key(session_id),
                        "UpdateExpression": "ADD listenerCount :minus",
                        "ConditionExpression": "listenerCount > :zero",
                        "ExpressionAttributeValues": {":minus": {"N": "-1"}, ":zero": {"N": "0"}},
                    }},
                ])
            else:
                return self._remove_speaker(session_id, connection_id)
        except ClientError as exc:
            code = error_code(exc)
            reasons = exc.response.get("CancellationReasons") or []
            if code == "TransactionCanceledException" and reasons:
                if reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
                if reasons[1].get("Code") == "ConditionalCheckFailed":
                    # The session record is gone (TTL): drop the connection alone.
                    ddb.delete_item(TableName=self.table_name, Key=connection_key(session_id, connection_id))
                    return True
            raise unavailable(exc) from None
        except BotoCoreError as exc:
            raise unavailable(exc) from None
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

    # Teardown drops records one by one and then counts them off the session in
    # one write: a transaction per listener would conflict on the session item.
    def forget(self, session_id: str, connection_id: str) -> bool:
        """Deletes a connection record without touching the session; True if it existed."""
        result = client("dynamodb").delete_item(TableName=self.table_name, Key=connection_key(session_id, connection_id),
                                                ReturnValues="ALL_OLD")
        return "Attributes" in result

    def release_listeners(self, session_id: str, count: int) -> None:
        """Takes `count` forgotten listeners off the session's listenerCount (unless the session is gone: TTL)."""
        self._update_session_if(session_id, UpdateExpression="ADD listenerCount :minus",
                                ConditionExpression="attribute_exists(pk)",
                                ExpressionAttributeValues={":minus": {"N": str(-count)}})

    def _update_session_if(self, session_id: str, **update) -> None:
        """One conditional write to the session item; a failed condition means there is nothing to do."""
        try:
            client("dynamodb").update_item(TableName=self.table_name, Key=session_key(session_id), **update)
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise

    def page(self, session_id: str, start_key: dict | None = None, limit: int = 100) -> tuple[list[dict], dict | None]:
        """One page of the session's connections: ({connectionId, role}, ...), next start key."""
        query = {
            "TableName": self.table_name,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{session_id}"}, ":prefix": {"S": CONNECTION_PREFIX}},
            "ProjectionExpression": "connectionId, #role",
            "ExpressionAttributeNames": {"#role": "role"},
            "Limit": limit,
        }
        if start_key:
            query["ExclusiveStartKey"] = start_key
        try:
            result = client("dynamodb").query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        items = [{"connectionId": i["connectionId"]["S"], "role": i["role"]["S"]} for i in result.get("Items", [])]
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


def _legacy_key(connection_id: str) -> dict:
    return {"pk": {"S": f"LEGACY#{connection_id}"}, "sk": {"S": "SESSION"}}
