"""Audio to listeners: each chunk of a session's audio in one language posted, in order, to exactly the
listeners of that language (docs/protocols.md "Audio to listeners").

Two inputs, both Kinesis streams read by one fan-out function (docs/architecture.md "Audio to listeners"):
- the floor: the speaker's audio as sendAudio forwards it (usecases/audio.py), so paused audio reaches
  listeners when it is released and muted audio never does, as it reaches the pipeline; sent to the listeners
  of the session's source language and to those who asked for the original;
- translated audio: what the pipeline hands over for (session, language), partition key
  "<sessionId>#<language>" so that a language's chunks keep their order. A malformed record is counted
  (AudioRecordsMalformed), logged without its content and skipped: it never holds back the stream.

The listeners of a language are one Query of the listening index (data/connections.listeners), read once a
batch per (session, language). Each listener is posted its chunks of the batch one after the other (its order),
the listeners in parallel. A post that answers 410 drops the record as the status broadcast does. A language
with more listeners than AUDIO_SLICE_THRESHOLD is handed to the slice workers instead (usecases/slices.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..data import connections as stored_connections
from ..domain import SUPPORTED_LANGUAGES, Connection
from ..platform import management
from ..platform.observability import logger, metric
from ..platform.settings import settings
from ..session_ids import is_valid_session_id
from .broadcast import CONNECTING_SECONDS, MAX_DROPS, POST_THREADS, drop_gone

ORIGINAL = ""  # a listener's language when it asked for the original (the source language, whatever it is)
SAMPLE_RATE = 16000
CHANNELS = 1
# A translated chunk's largest audio, decoded: a Kinesis record is at most 1 MiB.
MAX_TRANSLATED_BYTES = 512 * 1024
# Consecutive chunks of one batch are sent to a listener as one message of up to this much audio: 22,400 bytes
# are 29,868 in base64, so the message stays within one of API Gateway's 32 KB metering increments (seven 100 ms
# chunks). A batch holds more than one chunk of a language only when the fan-out is behind: merging them
# catches up with a seventh of the posts.
MERGED_BYTES = 22400


@dataclass(frozen=True)
class ListenerChunk:
    """A piece of audio for the listeners of one language of a session."""

    sessionId: str
    language: str  # the language code the listeners hear
    sequenceNumber: int
    audioData: str  # base64 PCM, 16-bit little-endian
    timestamp: int  # ms since the epoch: when the service received it (floor) or the pipeline made it
    record: str  # the Kinesis sequence number it came in (what a failure is reported by)
    original: bool = False  # the speaker's own audio (also sent to those who asked for the original)
    transcript: str | None = None
    duration: int | None = None  # ms
    sampleRate: int = SAMPLE_RATE
    channels: int = CHANNELS
    chunks: int = 1  # how many chunks of the stream this one merges (merged())

    def size(self) -> int:
        """Decoded bytes, from the base64 length."""
        return len(self.audioData) * 3 // 4 - self.audioData[-2:].count("=")


class Malformed(ValueError):
    """A translated-audio record this service cannot deliver; its reason is a fixed word, never its content."""


def chunks_of(records: list[dict]) -> tuple[list[ListenerChunk], int]:
    """The chunks the Kinesis records carry, in order, and how many records were malformed (skipped, counted)."""
    translated_arn = settings().translated_audio_stream_arn
    chunks, malformed = [], 0
    for record in records:
        translated = bool(translated_arn) and str(record.get("eventSourceARN", "")).startswith(translated_arn)
        try:
            chunks.append(_translated(record) if translated else _floor(record))
        except Malformed as reason:
            malformed += 1
            logger.warning("audio record skipped", extra={"reason": str(reason), "translated": translated,
                                                          "record": record.get("kinesis", {}).get("sequenceNumber")})
    if malformed:
        metric("AudioRecordsMalformed", malformed)
    return chunks, malformed


def _payload(record: dict) -> dict:
    try:
        payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
    except (KeyError, TypeError, ValueError, binascii.Error):
        raise Malformed("NOT_JSON") from None
    if not isinstance(payload, dict):
        raise Malformed("NOT_AN_OBJECT")
    return payload


def _floor(record: dict) -> ListenerChunk:
    """The speaker's chunk as sendAudio forwarded it ({sessionId, seq, receivedAt, sourceLanguage, audio, ...})."""
    payload = _payload(record)
    try:
        seq, received = payload.get("seq"), payload["receivedAt"]
        # A chunk without the client's seq (the published clients send none) is numbered by its arrival time.
        return ListenerChunk(payload["sessionId"], payload["sourceLanguage"], seq if seq is not None else received,
                             payload["audio"], received, record["kinesis"]["sequenceNumber"], original=True)
    except KeyError:
        raise Malformed("FLOOR_RECORD") from None


def _translated(record: dict) -> ListenerChunk:
    """A pipeline's record ({sessionId, language, sequenceNumber, audioData, ...}: docs/protocols.md)."""
    payload = _payload(record)
    session_id, language, sequence = payload.get("sessionId"), payload.get("language"), payload.get("sequenceNumber")
    if not is_valid_session_id(session_id):
        raise Malformed("SESSION_ID")
    if language not in SUPPORTED_LANGUAGES:
        raise Malformed("LANGUAGE")
    if type(sequence) is not int or sequence < 0:
        raise Malformed("SEQUENCE_NUMBER")
    audio = payload.get("audioData")
    if not isinstance(audio, str) or not audio or len(audio) > (MAX_TRANSLATED_BYTES // 3 + 1) * 4:
        raise Malformed("AUDIO_DATA")
    try:
        base64.b64decode(audio, validate=True)
    except (binascii.Error, ValueError):
        raise Malformed("AUDIO_DATA") from None
    if payload.get("format", "pcm") != "pcm" or payload.get("sampleRate", SAMPLE_RATE) != SAMPLE_RATE \
            or payload.get("channels", CHANNELS) != CHANNELS:
        raise Malformed("FORMAT")
    timestamp, transcript, duration = payload.get("timestamp"), payload.get("transcript"), payload.get("duration")
    if timestamp is not None and type(timestamp) is not int:
        raise Malformed("TIMESTAMP")
    if transcript is not None and not isinstance(transcript, str):
        raise Malformed("TRANSCRIPT")
    if duration is not None and type(duration) is not int:
        raise Malformed("DURATION")
    return ListenerChunk(session_id, language, sequence, audio,
                         timestamp if timestamp is not None else int(time.time() * 1000),
                         record["kinesis"]["sequenceNumber"], transcript=transcript, duration=duration)


# What a listener's connection ({connectionId, role, connectedAt, dialect}) is sent of a chunk; None: nothing.
Shape = Callable[[Connection, ListenerChunk], "dict | None"]


def deliver(records: list[dict], shape: Shape) -> tuple[dict, list[str]]:
    """Posts the records' chunks to their listeners: the batch's summary, and the records to report as failed
    (each failed (session, language)'s first one; Lambda retries the batch from the earliest)."""
    chunks, malformed = chunks_of(records)
    groups: dict[tuple[str, str, bool], list[ListenerChunk]] = {}
    for chunk in chunks:
        groups.setdefault((chunk.sessionId, chunk.language, chunk.original), []).append(chunk)
    sent = gone = sliced = 0
    failed: list[str] = []
    with ThreadPoolExecutor(POST_THREADS) as pool:
        for (session_id, language, original), group in groups.items():
            try:
                delivery = _to_listeners(session_id, [ORIGINAL, language] if original else [language], group,
                                         shape, pool)
            except Exception:  # noqa: BLE001 - one language's failure must not fail the others
                logger.exception("audio fan-out failed", extra={"sessionId": session_id, "language": language})
                failed.append(group[0].record)
                continue
            sent, gone, sliced = sent + delivery[0], gone + delivery[1], sliced + delivery[2]
    if sent:
        metric("AudioPostedToListeners", sent)
    if sliced:
        metric("AudioSliceRecordsPut", sliced)
    return {"chunks": len(chunks), "groups": len(groups), "sent": sent, "gone": gone, "sliced": sliced,
            "malformed": malformed, "failed": len(failed)}, failed


def merged(chunks: list[ListenerChunk]) -> list[ListenerChunk]:
    """Consecutive chunks joined into messages of at most MERGED_BYTES of audio each (a chunk larger than that
    alone): the audio concatenated, numbered by its last chunk (a listener orders by it), timed by its first
    (its latency is the oldest audio's), durations summed, transcripts joined."""
    runs: list[list[ListenerChunk]] = []
    for chunk in chunks:
        if runs and sum(c.size() for c in runs[-1]) + chunk.size() <= MERGED_BYTES:
            runs[-1].append(chunk)
        else:
            runs.append([chunk])
    return [run[0] if len(run) == 1 else _joined(run) for run in runs]


def _joined(run: list[ListenerChunk]) -> ListenerChunk:
    first, last = run[0], run[-1]
    audio = base64.b64encode(b"".join(base64.b64decode(c.audioData) for c in run)).decode()
    durations = [c.duration for c in run]
    transcripts = [c.transcript for c in run if c.transcript]
    return ListenerChunk(first.sessionId, first.language, last.sequenceNumber, audio, first.timestamp, first.record,
                         original=first.original, transcript=" ".join(transcripts) if transcripts else None,
                         duration=sum(durations) if None not in durations else None,
                         chunks=sum(c.chunks for c in run))


def _to_listeners(session_id: str, languages: list[str], chunks: list[ListenerChunk], shape: Shape,
                  pool: ThreadPoolExecutor) -> tuple[int, int, int]:
    """(posted, gone, slice records put): a crowd goes to the slice workers (usecases/slices.py), others are
    posted here, at the lowest latency."""
    chunks = merged(chunks)
    listeners = {c.connectionId: c for language in languages
                 for page in stored_connections.listeners(session_id, language) for c in page}
    if settings().audio_slice_stream_name and len(listeners) > settings().audio_slice_threshold:
        from . import slices  # it builds on this module

        return 0, 0, slices.dispatch(session_id, chunks[0].language, list(listeners.values()), chunks)
    return (*post_each(session_id, [(c, chunks) for c in listeners.values()], shape, pool), 0)


def post_each(session_id: str, plan: list[tuple[Connection, list[ListenerChunk]]], shape: Shape,
              pool: ThreadPoolExecutor) -> tuple[int, int]:
    """Posts each connection its chunks in order, the connections in parallel; gone ones dropped: (posted, gone)."""
    posting = [(c, pool.submit(_post_in_order, c, chunks, shape)) for c, chunks in plan]
    sent, gone = 0, []
    connecting_since = int(time.time()) - CONNECTING_SECONDS
    for connection, post in posting:
        delivered, closed = post.result()
        sent += delivered
        # A 410 from a socket still within its $connect window keeps its record (docs/architecture.md).
        if closed and connection.connectedAt <= connecting_since:
            gone.append(connection)
    if gone:
        drop_gone(session_id, gone[:MAX_DROPS], pool)
    return sent, len(gone)


def _post_in_order(connection: Connection, chunks: list[ListenerChunk], shape: Shape) -> tuple[int, bool]:
    """Posts the chunks to one listener, one after the other: (how many were sent, whether it is gone)."""
    sent = 0
    for chunk in chunks:
        message = shape(connection, chunk)
        if message is None:
            continue
        delivered = management.offer(connection.connectionId, message)
        if delivered is False:
            return sent, True  # gone: the rest of its chunks would be answered 410 too
        sent += bool(delivered)
    return sent, False
