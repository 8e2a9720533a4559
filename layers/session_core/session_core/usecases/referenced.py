"""Referenced audio to listeners: a batch's audio of each (session, language), about 2 s (the event source
mapping's batching window), stored once as a chunk (data/chunk_store.py), and its URL posted to the listeners
who get referenced chunks (docs/protocols.md "Audio to listeners"; docs/performance.md says when).

Reads the same records as the inline fan-out (usecases/listening.py, whose parsing it shares), through mappings
of its own. A chunk that cannot be stored is counted (ReferencedChunksNotStored) and its listeners are posted
nothing (no URL that would not answer); it is not retried: by then the next chunk is due, and a live listener
is better served by it than by a late one. A failure to reach the listeners is retried as the inline fan-out's.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..data import chunk_store
from ..data import connections as stored_connections
from ..domain import Connection
from ..platform import management
from ..platform.observability import logger, metric
from .broadcast import CONNECTING_SECONDS, MAX_DROPS, POST_THREADS, drop_gone
from .listening import ORIGINAL, ListenerChunk, chunks_of


@dataclass(frozen=True)
class StoredChunk:
    """A stored chunk of a (session, language)'s audio, as its listeners are told of it."""

    sessionId: str
    language: str
    sequenceNumber: int  # its first chunk's: a listener plays the chunks in this order
    url: str
    timestamp: int  # ms since the epoch: its first chunk's (the oldest audio in it)
    duration: float  # seconds
    transcript: str | None = None


# What a listener's connection ({connectionId, role, connectedAt, dialect}) is sent of a stored chunk; None: nothing.
Shape = Callable[[Connection, StoredChunk], "dict | None"]


def deliver(records: list[dict], shape: Shape) -> tuple[dict, list[str]]:
    """Stores the records' audio, a chunk per (session, language), and posts each chunk's URL to its listeners:
    the batch's summary, and the records to report as failed (as listening.deliver)."""
    chunks, malformed = chunks_of(records)
    groups: dict[tuple[str, str, bool], list[ListenerChunk]] = {}
    for chunk in chunks:
        groups.setdefault((chunk.sessionId, chunk.language, chunk.original), []).append(chunk)
    stored = not_stored = sent = gone = 0
    failed: list[str] = []
    with ThreadPoolExecutor(POST_THREADS) as pool:
        for (session_id, language, original), group in groups.items():
            try:
                chunk = _store(group)
            except Exception:  # noqa: BLE001 - counted; the other languages' chunks go on
                logger.exception("referenced chunk not stored", extra={"sessionId": session_id, "language": language})
                not_stored += 1
                continue
            stored += 1
            try:
                delivery = _to_listeners(chunk, [ORIGINAL, language] if original else [language], shape, pool)
            except Exception:  # noqa: BLE001 - one language's failure must not fail the others
                logger.exception("referenced fan-out failed", extra={"sessionId": session_id, "language": language})
                failed.append(group[0].record)
                continue
            sent, gone = sent + delivery[0], gone + delivery[1]
    if not_stored:
        metric("ReferencedChunksNotStored", not_stored)
    if stored:
        metric("ReferencedChunksStored", stored)
    if sent:
        metric("ReferencedChunksPosted", sent)
    return {"chunks": len(chunks), "groups": len(groups), "stored": stored, "notStored": not_stored, "sent": sent,
            "gone": gone, "malformed": malformed, "failed": len(failed)}, failed


def _store(group: list[ListenerChunk]) -> StoredChunk:
    first = group[0]
    pcm = b"".join(base64.b64decode(c.audioData) for c in group)
    url = chunk_store.store(chunk_store.key(first.sessionId, first.language, first.sequenceNumber),
                            chunk_store.wav(pcm, first.sampleRate, first.channels))
    transcripts = [c.transcript for c in group if c.transcript]
    duration = len(pcm) / (chunk_store.SAMPLE_WIDTH * first.channels * first.sampleRate)
    return StoredChunk(first.sessionId, first.language, first.sequenceNumber, url, first.timestamp,
                       round(duration, 3), " ".join(transcripts) if transcripts else None)


def _to_listeners(chunk: StoredChunk, languages: list[str], shape: Shape, pool: ThreadPoolExecutor) -> tuple[int, int]:
    listeners = {c.connectionId: c for language in languages
                 for page in stored_connections.listeners(chunk.sessionId, language, referenced=True) for c in page}
    posting = [(c, pool.submit(_post, c, chunk, shape)) for c in listeners.values()]
    sent, gone = 0, []
    connecting_since = int(time.time()) - CONNECTING_SECONDS
    for connection, post in posting:
        delivered = post.result()
        sent += bool(delivered)
        # A 410 from a socket still within its $connect window keeps its record (docs/architecture.md).
        if delivered is False and connection.connectedAt <= connecting_since:
            gone.append(connection)
    if gone:
        drop_gone(chunk.sessionId, gone[:MAX_DROPS], pool)
    return sent, len(gone)


def _post(connection: Connection, chunk: StoredChunk, shape: Shape) -> bool | None:
    message = shape(connection, chunk)
    return None if message is None else management.offer(connection.connectionId, message)
