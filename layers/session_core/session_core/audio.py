"""Audio from the speaker to the transcription pipeline (a Kinesis stream).

- active: one Kinesis record per chunk, partition key = session ID, so a
  session's chunks stay in order on one shard;
- paused: the chunk is kept in the table (sk = AUDIO#<receivedAtMs>#<seq>);
  after a resume, chunks at most PAUSE_BUFFER_SECONDS older than the resume
  are forwarded in arrival order before any new audio, older ones dropped
  and counted;
- ended: refused with SESSION_ENDED, nothing forwarded.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from botocore.exceptions import BotoCoreError, ClientError

from . import errors
from .aws import client
from .models import ACTIVE, ENDED, PAUSED, Session
from .observability import MetricUnit, logger, metric
from .repository import error_code, session_key, unavailable
from .sessions import repository
from .settings import settings

BUFFER_PREFIX = "AUDIO#"
BUFFER_TTL_SECONDS = 3600


def parse_chunk(message: dict) -> tuple[int, str, int]:
    """(seq, base64 data, decoded size) of a sendAudio message, or the error for it."""
    seq = message.get("seq")
    if type(seq) is not int or seq < 0:
        raise errors.InvalidSeq()
    data = message.get("data")
    if not isinstance(data, str) or not data:
        raise errors.InvalidAudio()
    # Cheap bound before decoding: 4 base64 characters carry 3 bytes.
    limit = settings().max_audio_bytes
    if len(data) > (limit // 3 + 1) * 4:
        raise errors.AudioTooLarge()
    try:
        size = len(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise errors.InvalidAudio() from None
    if size > limit:
        raise errors.AudioTooLarge()
    return seq, data, size


def receive(session_id: str, seq: int, data: str) -> None:
    now_ms = int(time.time() * 1000)
    session = repository().get(session_id, now_ms // 1000)
    if session.status == ENDED:
        raise errors.SessionEnded()
    if session.status == PAUSED:
        _buffer(session, seq, data, now_ms)
        return
    if session.bufferedChunks:
        flush(session)
    _forward(session, [(seq, data, now_ms)])


def flush(session: Session) -> None:
    """Forwards what was buffered while paused. One flusher wins the claim on
    the counter; chunks are forwarded oldest first, then deleted."""
    if session.status != ACTIVE or not session.bufferedChunks:
        return
    table = settings().table_name
    ddb = client("dynamodb")
    try:
        ddb.update_item(
            TableName=table, Key=session_key(session.sessionId),
            UpdateExpression="SET bufferedChunks = :zero",
            ConditionExpression="bufferedChunks = :seen",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":seen": {"N": str(session.bufferedChunks)}},
        )
    except ClientError as exc:
        if error_code(exc) == "ConditionalCheckFailedException":
            return  # another invocation is flushing
        raise unavailable(exc) from None
    oldest_kept_ms = ((session.resumedAt or 0) - settings().pause_buffer_seconds) * 1000
    chunks, keys, dropped = [], [], 0
    for item in _buffered_items(session.sessionId):
        keys.append({"pk": item["pk"], "sk": item["sk"]})
        received_ms = int(item["receivedAtMs"]["N"])
        if received_ms >= oldest_kept_ms:
            chunks.append((int(item["seq"]["N"]), item["data"]["S"], received_ms))
        else:
            dropped += 1
    _forward(session, chunks)
    _delete(table, keys)
    if dropped:
        metric("AudioDroppedWhilePaused", dropped)
    logger.info("paused audio flushed", extra={"forwarded": len(chunks), "dropped": dropped})


def _buffer(session: Session, seq: int, data: str, now_ms: int) -> None:
    """Keeps the chunk, then counts it on the session while it is still paused. Two single-item writes,
    not a transaction: a transaction on the session item conflicts with every other write to it."""
    table = settings().table_name
    key = {"pk": {"S": f"SESSION#{session.sessionId}"}, "sk": {"S": f"{BUFFER_PREFIX}{now_ms:013d}#{seq:012d}"}}
    ddb = client("dynamodb")
    try:
        ddb.put_item(TableName=table, Item={**key, "seq": {"N": str(seq)}, "data": {"S": data},
                                            "receivedAtMs": {"N": str(now_ms)},
                                            "expiresAt": {"N": str(now_ms // 1000 + BUFFER_TTL_SECONDS)}})
        ddb.update_item(TableName=table, Key=session_key(session.sessionId),
                        UpdateExpression="ADD bufferedChunks :one",
                        ConditionExpression="#status = :paused",
                        ExpressionAttributeNames={"#status": "status"},
                        ExpressionAttributeValues={":one": {"N": "1"}, ":paused": {"S": PAUSED}})
    except ClientError as exc:
        if error_code(exc) != "ConditionalCheckFailedException":
            raise unavailable(exc) from None
        # Resumed (or ended) between our read and write. Whoever deletes the kept chunk forwards it:
        # a flush that found it already did; if it is still here, it takes the live path.
        try:
            kept = "Attributes" in ddb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
        except (ClientError, BotoCoreError) as retry_exc:
            raise unavailable(retry_exc) from None
        if kept:
            receive(session.sessionId, seq, data)
        return
    except BotoCoreError as exc:
        raise unavailable(exc) from None
    metric("AudioChunksBuffered")


def _forward(session: Session, chunks: list[tuple[int, str, int]]) -> None:
    """One PutRecord per chunk, each ordered after the previous one. Counts what
    reached the stream (AudioChunksForwarded, AudioBytesForwarded: decoded bytes),
    live or flushed after a pause, even if a later chunk of the batch fails."""
    kinesis = client("kinesis")
    previous = None
    forwarded = forwarded_bytes = 0
    try:
        for seq, data, received_ms in chunks:
            previous = _put(kinesis, session, seq, data, received_ms, previous)
            forwarded += 1
            forwarded_bytes += _decoded_size(data)
    finally:
        if forwarded:
            metric("AudioChunksForwarded", forwarded)
            metric("AudioBytesForwarded", forwarded_bytes, MetricUnit.Bytes)


def _decoded_size(data: str) -> int:
    # parse_chunk validated it as padded base64 without whitespace.
    return len(data) * 3 // 4 - len(data[-2:]) + len(data[-2:].rstrip("="))


def _put(kinesis, session: Session, seq: int, data: str, received_ms: int, previous: str | None) -> str:
    record = json.dumps({
        "sessionId": session.sessionId, "seq": seq,
        "receivedAt": received_ms, "forwardedAt": int(time.time() * 1000),
        "sourceLanguage": session.sourceLanguage, "qualityTier": session.qualityTier,
        # The partial-results settings, so the pipeline honours the speaker's choice.
        "partialResultsEnabled": session.partialResultsEnabled,
        "minStabilityThreshold": session.minStabilityThreshold, "maxBufferTimeout": session.maxBufferTimeout,
        "audio": data,
    }).encode()
    request = {"StreamName": settings().audio_stream_name, "PartitionKey": session.sessionId, "Data": record}
    if previous:
        request["SequenceNumberForOrdering"] = previous
    try:
        return kinesis.put_record(**request)["SequenceNumber"]
    except (ClientError, BotoCoreError) as exc:
        raise unavailable(exc) from None


def _buffered_items(session_id: str):
    query = {
        "TableName": settings().table_name,
        "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
        "ExpressionAttributeValues": {":pk": {"S": f"SESSION#{session_id}"}, ":prefix": {"S": BUFFER_PREFIX}},
        "ConsistentRead": True,
    }
    while True:
        try:
            page = client("dynamodb").query(**query)
        except (ClientError, BotoCoreError) as exc:
            raise unavailable(exc) from None
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _delete(table: str, keys: list[dict]) -> None:
    for start in range(0, len(keys), 25):
        requests = [{"DeleteRequest": {"Key": key}} for key in keys[start:start + 25]]
        while requests:
            try:
                result = client("dynamodb").batch_write_item(RequestItems={table: requests})
            except (ClientError, BotoCoreError) as exc:
                raise unavailable(exc) from None
            requests = result.get("UnprocessedItems", {}).get(table, [])


def set_status(session_id: str, speaker_id: str, status: str) -> Session:
    """pause/resume from the speaker's socket; a resume forwards the buffer at once."""
    session = repository().update(session_id, speaker_id, {"status": status}, int(time.time()))
    flush(session)
    return session
