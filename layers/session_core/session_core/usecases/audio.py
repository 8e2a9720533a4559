"""Audio from the speaker to the transcription pipeline (a Kinesis stream).

- active: one Kinesis record per chunk, partition key = session ID, so a
  session's chunks stay in order on one shard;
- paused: the chunk is kept in the table (data/audio_buffer.py); after a
  resume, chunks at most PAUSE_BUFFER_SECONDS older than the resume are
  forwarded in arrival order before any new audio, older ones dropped and
  counted;
- ended: refused with SESSION_ENDED, nothing forwarded.
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from .. import errors
from ..data import audio_buffer
from ..data import sessions as stored_sessions
from ..domain import ACTIVE, ENDED, PAUSED
from ..models import Session
from ..platform.aws import call
from ..platform.observability import MetricUnit, logger, metric
from ..platform.settings import settings


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
    # Strongly consistent: a chunk right after a pause or resume must take the branch that change decided.
    session = stored_sessions.get(session_id, now_ms // 1000, consistent=True)
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
    if not audio_buffer.claim(session.sessionId, session.bufferedChunks):
        return  # another invocation is flushing
    oldest_kept_ms = ((session.resumedAt or 0) - settings().pause_buffer_seconds) * 1000
    chunks, keys, dropped = [], [], 0
    for key, seq, data, received_ms in audio_buffer.chunks(session.sessionId):
        keys.append(key)
        if received_ms >= oldest_kept_ms:
            chunks.append((seq, data, received_ms))
        else:
            dropped += 1
    _forward(session, chunks)
    audio_buffer.drop(keys)
    if dropped:
        metric("AudioDroppedWhilePaused", dropped)
    logger.info("paused audio flushed", extra={"forwarded": len(chunks), "dropped": dropped})


def _buffer(session: Session, seq: int, data: str, now_ms: int) -> None:
    if audio_buffer.keep(session.sessionId, seq, data, now_ms):
        metric("AudioChunksBuffered")
        return
    # Resumed (or ended) between our read and write. Whoever deletes the kept chunk forwards it:
    # a flush that found it already did; if it is still here, it takes the live path.
    if audio_buffer.take_back(session.sessionId, seq, now_ms):
        receive(session.sessionId, seq, data)


def _forward(session: Session, chunks: list[tuple[int, str, int]]) -> None:
    """One PutRecord per chunk, each ordered after the previous one. Counts what
    reached the stream (AudioChunksForwarded, AudioBytesForwarded: decoded bytes),
    live or flushed after a pause, even if a later chunk of the batch fails."""
    previous = None
    forwarded = forwarded_bytes = 0
    try:
        for seq, data, received_ms in chunks:
            previous = _put(session, seq, data, received_ms, previous)
            forwarded += 1
            forwarded_bytes += _decoded_size(data)
    finally:
        if forwarded:
            metric("AudioChunksForwarded", forwarded)
            metric("AudioBytesForwarded", forwarded_bytes, MetricUnit.Bytes)


def _decoded_size(data: str) -> int:
    # parse_chunk validated it as padded base64 without whitespace.
    return len(data) * 3 // 4 - len(data[-2:]) + len(data[-2:].rstrip("="))


def _put(session: Session, seq: int, data: str, received_ms: int, previous: str | None) -> str:
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
    return call("kinesis", "put_record", **request)["SequenceNumber"]


def set_status(session_id: str, speaker_id: str, status: str) -> Session:
    """pause/resume from the speaker's socket; a resume forwards the buffer at once."""
    session = stored_sessions.update(session_id, speaker_id, {"status": status}, int(time.time()))
    flush(session)
    return session
