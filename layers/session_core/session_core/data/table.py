"""The sessions table: every item key and the one way a request reaches it.

Item layout (one table shared by the HTTP and WebSocket APIs):
  pk = "SESSION#<sessionId>", sk = "META"                        the session
  pk = "SESSION#<sessionId>", sk = "CONN#<connectionId>"         its connections
  pk = "SESSION#<sessionId>", sk = "AUDIO#<receivedAtMs>#<tag>"  audio kept while it is paused
  pk = "SESSION#<sessionId>", sk = "BROADCAST"                   the newest version its sockets were told
  pk = "LIVE#<shard>", sk = "<sessionId>"                         a session the sweep visits until its teardown
  pk = "LEGACY#<connectionId>", sk = "SESSION"                   a legacy connection's session
  pk = "USER#<sub>", sk = "SESSIONS"                              a user's live sessions (live_sessions.py)
A listener's connection item also carries "listening" = "<sessionId>#<language>" ("" after "#": the original),
the key of the sparse index LISTENING_INDEX, so the listeners of one language are one Query of that index.
A session item counts its listeners by language in top-level numbers "listeners_<code>" ("listeners_" alone:
the source language), because DynamoDB's ADD works on top-level attributes only.
  pk = "idempotency#<function name>", sk = "create_session#<hash>"  idempotency records (Powertools writes them)
"""

from __future__ import annotations

import zlib

from ..platform.aws import Declined, call, client
from ..platform.settings import settings

META = "META"
CONNECTION_PREFIX = "CONN#"
BUFFER_PREFIX = "AUDIO#"
CONDITION_FAILED = "ConditionalCheckFailedException"


def session_partition(session_id: str) -> dict:
    return {"S": f"SESSION#{session_id}"}


def session_key(session_id: str) -> dict:
    return {"pk": session_partition(session_id), "sk": {"S": META}}


def connection_key(session_id: str, connection_id: str) -> dict:
    return {"pk": session_partition(session_id), "sk": {"S": f"{CONNECTION_PREFIX}{connection_id}"}}


BROADCAST = "BROADCAST"


def broadcast_key(session_id: str) -> dict:
    return {"pk": session_partition(session_id), "sk": {"S": BROADCAST}}


def buffer_key(session_id: str, received_ms: int, tag: str) -> dict:
    # Zero-padded, so the sort key orders chunks by arrival; the tag (the zero-padded seq, or a unique
    # token for a chunk without one) keeps two chunks of one millisecond apart.
    return {"pk": session_partition(session_id), "sk": {"S": f"{BUFFER_PREFIX}{received_ms:013d}#{tag}"}}


# The sparse index of listener connections by (session, language): audio for a language is posted to its listeners
# without reading the others'.
LISTENING_INDEX = "ListenersByLanguage"
LISTENING = "listening"


REFERENCED = "#referenced"


def listening_key(session_id: str, language: str, referenced: bool = False) -> dict:
    """A listener's index key ("" = the source language, whatever it is called). A listener sent referenced chunks
    (usecases/referenced.py) is keyed apart, so each fan-out reads its own listeners and none of the other's."""
    return {"S": f"{session_id}#{language}{REFERENCED if referenced else ''}"}


LANGUAGE_COUNT_PREFIX = "listeners_"


def language_count(language: str) -> str:
    """The session item attribute that counts the listeners of `language` ("" = the source language)."""
    return f"{LANGUAGE_COUNT_PREFIX}{language}"


# Sessions are listed for the sweep in a few partitions, so session creation never makes one of them hot.
LIVE_SHARDS = 4


def live_partition(shard: int) -> dict:
    return {"S": f"LIVE#{shard}"}


def live_key(session_id: str) -> dict:
    return {"pk": live_partition(zlib.crc32(session_id.encode()) % LIVE_SHARDS), "sk": {"S": session_id}}


def legacy_key(connection_id: str) -> dict:
    return {"pk": {"S": f"LEGACY#{connection_id}"}, "sk": {"S": "SESSION"}}


def user_sessions_key(user_id: str) -> dict:
    return {"pk": {"S": f"USER#{user_id}"}, "sk": {"S": "SESSIONS"}}


def dynamodb_client():
    """The DynamoDB client, for a library that sends its own requests (Powertools' idempotency records)."""
    return client("dynamodb")


def request(operation: str, **parameters) -> dict:
    """One DynamoDB request on the sessions table. A failed condition raises ConditionFailed (with the item
    DynamoDB returned, if asked for); any other failure ServiceUnavailable."""
    try:
        return call("dynamodb", operation, expected=(CONDITION_FAILED,), TableName=settings().table_name,
                    **parameters)
    except Declined as declined:
        raise ConditionFailed(declined.item) from None


def delete_all(keys: list[dict]) -> None:
    """Deletes the items, 25 keys a request (BatchWriteItem's limit), retrying what DynamoDB left unprocessed."""
    table = settings().table_name
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": key}} for key in keys[start:start + 25]]
        while requests:
            result = call("dynamodb", "batch_write_item", RequestItems={table: requests})
            requests = result.get("UnprocessedItems", {}).get(table, [])


class ConditionFailed(Exception):
    """A conditional write found the item otherwise than its condition required."""

    def __init__(self, item: dict | None) -> None:
        super().__init__(CONDITION_FAILED)
        self.item = item


def query_items(partition: dict, prefix: str, **parameters):
    """Every item of the partition whose sort key starts with `prefix`, page by page."""
    return _pages({"KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
                   "ExpressionAttributeValues": {":pk": partition, ":prefix": {"S": prefix}}, **parameters})


def query_partition(partition: dict, **parameters):
    """Every item of the partition, page by page."""
    return _pages({"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": partition},
                   **parameters})


def query_index(index: str, attribute: str, key: dict, **parameters):
    """Every item of the index whose partition key `attribute` is `key`, page by page (eventually consistent:
    a global secondary index)."""
    return _pages({"IndexName": index, "KeyConditionExpression": "#key = :key",
                   "ExpressionAttributeNames": {"#key": attribute, **parameters.pop("ExpressionAttributeNames", {})},
                   "ExpressionAttributeValues": {":key": key}, **parameters})


def _pages(query: dict):
    while True:
        page = request("query", **query)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
