"""Audio kept while a session is paused (pk = "SESSION#<sessionId>", sk = "AUDIO#<receivedAtMs>#<tag>"; see
table.py), counted on the session item (bufferedChunks) so that a resume knows there is something to forward."""

from __future__ import annotations

import base64

from ..domain import PAUSED
from .table import (
    BUFFER_PREFIX,
    ConditionFailed,
    buffer_key,
    delete_all,
    query_items,
    request,
    session_key,
    session_partition,
)

BUFFER_TTL_SECONDS = 3600
# (Chunk field, item attribute, DynamoDB type) of what a client may say of its chunk.
_SAID = (("seq", "seq", "N"), ("chunk_id", "chunkId", "S"), ("client_timestamp", "clientTimestamp", "N"))


def keep(session_id: str, chunk: dict, received_ms: int) -> bool:
    """Keeps the chunk, then counts it on the session while it is still paused. Two single-item writes,
    not a transaction: a transaction on the session item conflicts with every other write to it.

    False: the session was resumed (or ended) between the caller's read and this write; the caller
    takes the chunk back (take_back)."""
    key = buffer_key(session_id, received_ms, chunk["tag"])
    item = {**key, "data": {"S": chunk["data"]}, "size": {"N": str(chunk["size"])}, "tag": {"S": chunk["tag"]},
            "receivedAtMs": {"N": str(received_ms)}, "expiresAt": {"N": str(received_ms // 1000 + BUFFER_TTL_SECONDS)}}
    # What the client said of the chunk, each only if it said it (a published client's chunk has no seq).
    for name, attribute, kind in _SAID:
        if chunk.get(name) is not None:
            item[attribute] = {kind: str(chunk[name])}
    request("put_item", Item=item)
    try:
        request("update_item", Key=session_key(session_id), UpdateExpression="ADD bufferedChunks :one",
                ConditionExpression="#status = :paused", ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":one": {"N": "1"}, ":paused": {"S": PAUSED}})
    except ConditionFailed:
        return False
    return True


def take_back(session_id: str, tag: str, received_ms: int) -> bool:
    """Deletes a chunk `keep` could not count; True if it was still there (no flush forwarded it)."""
    return "Attributes" in request("delete_item", Key=buffer_key(session_id, received_ms, tag), ReturnValues="ALL_OLD")


def claim(session_id: str, seen: int) -> bool:
    """Claims the buffer for one flusher: resets the count it saw; False if another invocation got there first."""
    try:
        request("update_item", Key=session_key(session_id), UpdateExpression="SET bufferedChunks = :zero",
                ConditionExpression="bufferedChunks = :seen",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":seen": {"N": str(seen)}})
    except ConditionFailed:
        return False
    return True


def chunks(session_id: str):
    """The kept chunks, oldest first: (key, the chunk as kept, receivedAtMs)."""
    for page in query_items(session_partition(session_id), BUFFER_PREFIX, ConsistentRead=True):
        for item in page.get("Items", []):
            yield {"pk": item["pk"], "sk": item["sk"]}, _chunk(item), int(item["receivedAtMs"]["N"])


def _chunk(item: dict) -> dict:
    data = item["data"]["S"]
    # A chunk kept before size and tag were (a deploy during a pause) has seq and data only.
    chunk = {"data": data, "size": int(item["size"]["N"]) if "size" in item else len(base64.b64decode(data))}
    for name, attribute, kind in _SAID:
        if attribute in item:
            chunk[name] = int(item[attribute]["N"]) if kind == "N" else item[attribute]["S"]
    if "tag" in item:
        chunk["tag"] = item["tag"]["S"]
    return chunk


def drop(keys: list[dict]) -> None:
    delete_all(keys)
