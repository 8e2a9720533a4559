"""Slices of a crowd: a language with more listeners than one invocation posts to in time (above
AUDIO_SLICE_THRESHOLD) has its chunks handed to workers, each posting to one slice of its listeners
(docs/architecture.md "Audio to listeners", docs/performance.md "Audio to listeners").

- dispatch(): the fan-out puts one record a slice to the slice stream, partition key
  "<sessionId>#<language>#<slice>": a slice's records keep their order, and slices run side by side. A listener's
  slice is a hash of its connection id over a power of two of slices (about AUDIO_SLICE_LISTENERS each), so it
  stays in one slice (one order) until the language's audience doubles or halves.
- post(): the worker posts each listener of a slice its chunks in order, the listeners in parallel; a backlog of a
  slice's records in one batch is merged per listener as the fan-out merges its own.

The slice record is this service's own (never the pipeline's): {"sessionId", "language", "slice", "listeners":
[{connectionId, role, connectedAt, dialect}], "chunks": [ListenerChunk fields]}.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from .. import errors
from ..data import audio_stream
from ..domain import Connection
from ..platform.observability import logger, metric
from ..platform.settings import settings
from .broadcast import POST_THREADS
from .listening import ListenerChunk, Shape, merged, post_each

# A record's audio (base64 characters), leaving room for its listeners under Kinesis's 1 MiB record: a
# translated chunk (at most 512 KiB decoded, 699,052 in base64) always fits alone.
RECORD_AUDIO_CHARS = 768 * 1024
# PutRecords: at most 500 records and 5 MiB a request.
PUT_RECORDS = 500
PUT_BYTES = 5 * 1024 * 1024 - 64 * 1024
PUT_ATTEMPTS = 4  # a throttled record is put again alone (its slice's order holds: nothing of it follows)


def slice_count(listeners: int, per_slice: int) -> int:
    """The smallest power of two of slices of at most `per_slice` listeners on average."""
    needed = -(-listeners // per_slice)
    return 1 << max(needed - 1, 0).bit_length()


def slice_of(connection_id: str, slices: int) -> int:
    return zlib.crc32(connection_id.encode()) % slices


def dispatch(session_id: str, language: str, listeners: list[Connection], chunks: list[ListenerChunk]) -> int:
    """Puts the chunks for every slice of the listeners; how many records were put. Raises ServiceUnavailable
    when a record could not be put (the batch is retried from its first record: those put go again)."""
    slices = slice_count(len(listeners), settings().audio_slice_listeners)
    members: dict[int, list[Connection]] = {}
    for connection in listeners:
        members.setdefault(slice_of(connection.connectionId, slices), []).append(connection)
    put = 0
    # A slice's n-th record is put only once every slice's (n-1)-th is in: a retried record never overtakes the
    # next one of its slice.
    for piece in _pieces(chunks):
        entries = [{"PartitionKey": f"{session_id}#{language}#{number}",
                    "Data": json.dumps({"sessionId": session_id, "language": language, "slice": number,
                                        "listeners": [dataclasses.asdict(c) for c in connections],
                                        "chunks": [dataclasses.asdict(c) for c in piece]},
                                       separators=(",", ":")).encode()}
                   for number, connections in sorted(members.items())]
        for request in _requests(entries):
            _put(request)
        put += len(entries)
    return put


def _pieces(chunks: list[ListenerChunk]) -> list[list[ListenerChunk]]:
    pieces: list[list[ListenerChunk]] = []
    for chunk in chunks:
        if pieces and sum(len(c.audioData) for c in pieces[-1]) + len(chunk.audioData) <= RECORD_AUDIO_CHARS:
            pieces[-1].append(chunk)
        else:
            pieces.append([chunk])
    return pieces


def _requests(entries: list[dict]) -> list[list[dict]]:
    requests: list[list[dict]] = [[]]
    size = 0
    for entry in entries:
        entry_size = len(entry["Data"]) + len(entry["PartitionKey"])
        if len(requests[-1]) == PUT_RECORDS or (requests[-1] and size + entry_size > PUT_BYTES):
            requests.append([])
            size = 0
        requests[-1].append(entry)
        size += entry_size
    return requests


def _put(entries: list[dict]) -> None:
    """PutRecords, the records it refused (throttled: ProvisionedThroughputExceeded) put again, alone."""
    for attempt in range(PUT_ATTEMPTS):
        refused = audio_stream.put_slices(entries)
        if not refused:
            return
        metric("AudioSliceRecordsRefused", len(refused))
        entries = refused
        time.sleep(0.05 * 2 ** attempt)
    logger.error("slice records not put", extra={"records": len(entries)})
    raise errors.ServiceUnavailable()


class _Malformed(ValueError):
    pass


def post(records: list[dict], shape: Shape) -> tuple[dict, list[str]]:
    """The worker: each slice's listeners posted their chunks, in order; the summary, and each failed slice's
    first record (Lambda retries the batch from the earliest failed one)."""
    slices: dict[str, list[tuple[str, dict]]] = {}
    malformed = 0
    for record in records:
        try:
            payload = json.loads(base64.b64decode(record["kinesis"]["data"]))
            key = f"{payload['sessionId']}#{payload['language']}#{payload['slice']}"
        except (KeyError, TypeError, ValueError, binascii.Error):
            malformed += 1  # written by this service's fan-out only: never seen, but never retried forever
            logger.warning("slice record skipped", extra={"record": record.get("kinesis", {}).get("sequenceNumber")})
            continue
        slices.setdefault(key, []).append((record["kinesis"]["sequenceNumber"], payload))
    if malformed:
        metric("AudioRecordsMalformed", malformed)
    sent = gone = 0
    failed: list[str] = []
    with ThreadPoolExecutor(POST_THREADS) as pool:
        for key, group in slices.items():
            try:
                plan = _plan([payload for _, payload in group])
                delivery = post_each(group[0][1]["sessionId"], plan, shape, pool)
            except Exception:  # noqa: BLE001 - one slice's failure must not fail the others
                logger.exception("audio slice failed", extra={"slice": key})
                failed.append(group[0][0])
                continue
            sent, gone = sent + delivery[0], gone + delivery[1]
    if sent:
        metric("AudioPostedToListeners", sent)
    return {"records": len(records), "slices": len(slices), "sent": sent, "gone": gone, "malformed": malformed,
            "failed": len(failed)}, failed


def _plan(payloads: list[dict]) -> list[tuple[Connection, list[ListenerChunk]]]:
    """Each listener of the slice's records with its chunks in order (a listener who joined the slice later
    has only the later ones), consecutive chunks merged."""
    plan: dict[str, tuple[Connection, list[ListenerChunk]]] = {}
    for payload in payloads:
        chunks = [ListenerChunk(**c) for c in payload["chunks"]]
        for listed in payload["listeners"]:
            connection = Connection(**listed)
            plan.setdefault(connection.connectionId, (connection, []))[1].extend(chunks)
    return [(connection, merged(chunks)) for connection, chunks in plan.values()]
