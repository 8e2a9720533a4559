"""Audio from the speaker to the transcription pipeline (a Kinesis stream).

- active: one Kinesis record per chunk, partition key = session ID, so a
  session's chunks stay in order on one shard;
- paused: the chunk is kept in the table (data/audio_buffer.py); after a
  resume, chunks at most PAUSE_BUFFER_SECONDS older than the resume are
  forwarded in arrival order before any new audio, older ones dropped and
  counted;
- muted: dropped (counted AudioDroppedWhileMuted): a muted microphone is silence,
  nothing reaches the pipeline and nothing is kept;
- ended: refused with SESSION_ENDED, nothing forwarded.

A chunk without a sequence number (the published clients send none) is
forwarded with "seq": null, its own chunkId and clientTimestamp if it gave
them; its place in the stream is the order in which its PutRecord completed
(docs/protocols.md, "Audio order").
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import errors
from ..data import audio_buffer, audio_stream
from ..data import sessions as stored_sessions
from ..domain import ACTIVE, ENDED, MUTE, PAUSE, PAUSED, RESUME, UNMUTE
from ..platform.observability import MetricUnit, logger, metric
from ..platform.settings import settings
from . import sessions

if TYPE_CHECKING:
    from ..domain import Session


@dataclass(frozen=True)
class Chunk:
    """One piece of the speaker's audio, as received: base64 data and what the client said of it."""

    data: str
    size: int  # decoded bytes
    seq: int | None = None
    chunk_id: str | None = None
    client_timestamp: int | None = None
    # Orders and names the chunk while it is kept during a pause: its seq, or a unique token without one.
    tag: str = field(default_factory=lambda: f"n{secrets.token_hex(6)}")

    def __post_init__(self) -> None:
        if self.seq is not None:
            object.__setattr__(self, "tag", f"{self.seq:012d}")


def parse_chunk(message: dict) -> Chunk:
    """The chunk of a sendAudio message {seq, data}, or the error for it."""
    seq = message.get("seq")
    if type(seq) is not int or seq < 0:
        raise errors.InvalidSeq()
    return chunk(message.get("data"), seq=seq)


def chunk(data: object, **said) -> Chunk:
    """A chunk of base64 audio within the size limit, or INVALID_AUDIO / AUDIO_TOO_LARGE."""
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
    return Chunk(data, size, **said)


def receive(session_id: str, chunk: Chunk) -> None:
    now_ms = int(time.time() * 1000)
    # Strongly consistent: a chunk right after a pause or resume must take the branch that change decided.
    session = stored_sessions.get(session_id, now_ms // 1000, consistent=True)
    if session.status == ENDED:
        raise errors.SessionEnded()
    if session.muted:
        metric("AudioDroppedWhileMuted")
        return
    if session.status == PAUSED:
        _buffer(session, chunk, now_ms)
        return
    if session.bufferedChunks:
        flush(session)
    _forward(session, [(chunk, now_ms)])


def flush(session: Session) -> None:
    """Forwards what was buffered while paused. One flusher wins the claim on
    the counter; chunks are forwarded oldest first, then deleted."""
    if session.status != ACTIVE or not session.bufferedChunks:
        return
    if not audio_buffer.claim(session.sessionId, session.bufferedChunks):
        return  # another invocation is flushing
    oldest_kept_ms = ((session.resumedAt or 0) - settings().pause_buffer_seconds) * 1000
    chunks, keys, dropped = [], [], 0
    for key, kept, received_ms in audio_buffer.chunks(session.sessionId):
        keys.append(key)
        if received_ms >= oldest_kept_ms:
            chunks.append((Chunk(**kept), received_ms))
        else:
            dropped += 1
    _forward(session, chunks)
    audio_buffer.drop(keys)
    if dropped:
        metric("AudioDroppedWhilePaused", dropped)
    logger.info("paused audio flushed", extra={"forwarded": len(chunks), "dropped": dropped})


def _buffer(session: Session, chunk: Chunk, now_ms: int) -> None:
    if audio_buffer.keep(session.sessionId, _kept(chunk), now_ms):
        metric("AudioChunksBuffered")
        return
    # Resumed (or ended) between our read and write. Whoever deletes the kept chunk forwards it:
    # a flush that found it already did; if it is still here, it takes the live path.
    if audio_buffer.take_back(session.sessionId, chunk.tag, now_ms):
        receive(session.sessionId, chunk)


def _kept(chunk: Chunk) -> dict:
    return {"data": chunk.data, "size": chunk.size, "seq": chunk.seq, "chunk_id": chunk.chunk_id,
            "client_timestamp": chunk.client_timestamp, "tag": chunk.tag}


def _forward(session: Session, chunks: list[tuple[Chunk, int]]) -> None:
    """One PutRecord per chunk, each ordered after the previous one. Counts what
    reached the stream (AudioChunksForwarded, AudioBytesForwarded: decoded bytes),
    live or flushed after a pause, even if a later chunk of the batch fails."""
    previous = None
    forwarded = forwarded_bytes = 0
    try:
        for chunk, received_ms in chunks:
            previous = _put(session, chunk, received_ms, previous)
            forwarded += 1
            forwarded_bytes += chunk.size
    finally:
        if forwarded:
            metric("AudioChunksForwarded", forwarded)
            metric("AudioBytesForwarded", forwarded_bytes, MetricUnit.Bytes)


def _put(session: Session, chunk: Chunk, received_ms: int, previous: str | None) -> str:
    record = {
        "sessionId": session.sessionId, "seq": chunk.seq,
        "receivedAt": received_ms, "forwardedAt": int(time.time() * 1000),
        "sourceLanguage": session.sourceLanguage, "qualityTier": session.qualityTier,
        # The partial-results settings, so the pipeline honours the speaker's choice.
        "partialResultsEnabled": session.partialResultsEnabled,
        "minStabilityThreshold": session.minStabilityThreshold, "maxBufferTimeout": session.maxBufferTimeout,
        # The languages someone listens to now (switchLanguage moves a listener), for the pipeline to produce.
        "listenerLanguages": sorted(session.language_distribution()),
        "audio": chunk.data,
    }
    if chunk.chunk_id is not None:
        record["chunkId"] = chunk.chunk_id
    if chunk.client_timestamp is not None:
        record["clientTimestamp"] = chunk.client_timestamp
    return audio_stream.forward(session.sessionId, record, after=previous)


# The speaker's controls over the WebSocket, by name, as (session attribute, value).
CONTROLS = {PAUSE: ("status", PAUSED), RESUME: ("status", ACTIVE), MUTE: ("muted", True), UNMUTE: ("muted", False)}


def control(session_id: str, speaker_id: str, command: str) -> Session:
    """pause, resume, mute or unmute (CONTROLS) from the speaker's socket."""
    attribute, value = CONTROLS[command]
    if attribute == "status":
        return set_status(session_id, speaker_id, value)
    return set_muted(session_id, speaker_id, value)


def set_status(session_id: str, speaker_id: str, status: str) -> Session:
    """pause/resume from the speaker's socket; a resume forwards the buffer at once."""
    session = sessions.change(session_id, speaker_id, {"status": status})
    flush(session)
    return session


def set_muted(session_id: str, speaker_id: str, muted: bool) -> Session:
    """mute/unmute from the speaker's socket: while muted, audio is dropped (see receive)."""
    return sessions.change(session_id, speaker_id, {"muted": muted})
