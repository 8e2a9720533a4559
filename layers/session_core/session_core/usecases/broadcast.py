"""Status messages to every socket of a session when its status, listener
counts, mute or speaker presence change, whoever changed it (HTTP, WebSocket, teardown), each in
its connection's dialect (the caller shapes them: api/dialects/).

Fed by the table's stream: a batch is reduced to the latest state of each
session, so a burst of joins costs one message per socket, not one per join.
A change of the count alone reaches every socket only while the session is
small; in a larger one only the speaker is told it, so a crowd's joins cost
a post per batch rather than one per socket, and a pause behind them waits
for one post, not for a fan-out (docs/architecture.md "Status broadcast").
A session's failure is reported by its first record (ReportBatchItemFailures),
so the sessions before it are not told again; a change older than one its
sockets were told already (a retried half of a bisected batch) is skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

from ..data import connections as stored_connections
from ..data import sessions as stored_sessions
from ..data.sessions import State
from ..domain import ENDED, SPEAKER, Connection
from ..platform import management
from ..platform.observability import logger, metric

# Posting is network-bound: at AWS's tens of ms a post, 32 threads tell 1,000 sockets in about 1 s
# (docs/performance.md "Status fan-out"). The clients' pools hold as many connections.
POST_THREADS = 32
# Listeners up to which a change of the count alone is told to every socket; above it only to the
# speaker (the listeners' counts come with the next status or mute change).
COUNTS_TO_ALL_UP_TO = 100
# API Gateway answers 410 to a post to a connection whose $connect has not returned yet, and the
# join's own write can reach this broadcast in that window: a record younger than the longest
# $connect (the 29 s integration timeout) that answers 410 is kept. If that socket never opens, its
# record is dropped by a later broadcast or by the teardown.
CONNECTING_SECONDS = 30
# Gone records dropped by one broadcast (a DeleteItem each, POST_THREADS at once: a few seconds), their count
# taken off in one write. After the 2-hour limit a full session's sockets are all gone; that write changes the
# count, whose broadcast drops the next share.
MAX_DROPS = 2500


class Delivery(NamedTuple):
    sent: int
    gone: int  # answered 410: record dropped
    connecting: int  # answered 410 while possibly still connecting: record kept


class StatusChange(NamedTuple):
    """A session's new state, and what it was before the batch (None: a new session)."""

    sessionId: str
    status: str
    listenerCount: int
    muted: bool
    languages: dict[str, int]  # listeners by language
    before: State | None
    version: int = 0
    expiresAt: int = 0
    sequence: str = ""  # the session's first record in the batch: what its failure is reported by
    speaker: str = ""  # the speaker's connection ID; "" if none is connected
    speakerDisconnectedAt: int | None = None  # when the speaker left, while it is away

    @property
    def speakerConnected(self) -> bool:
        return bool(self.speaker)

    def status_changed(self) -> bool:
        return self.before is None or self.before.status != self.status

    def muted_changed(self) -> bool:
        return self.before is not None and self.before.muted != self.muted

    def speaker_changed(self) -> bool:
        return self.before is not None and self.before.speakerConnected != self.speakerConnected

    def for_everyone(self) -> bool:
        """Whether every socket is told this change, or the speaker alone (a count in a large session)."""
        return (self.status_changed() or self.muted_changed() or self.speaker_changed()
                or self.listenerCount <= COUNTS_TO_ALL_UP_TO)


# What a connection ({connectionId, role, connectedAt, dialect}) is told of a change; None: nothing.
Shape = Callable[[Connection, StatusChange], "dict | None"]


def changed_sessions(records: list[dict]) -> dict[str, StatusChange]:
    """sessionId -> its change, for session items whose status, listener counts, mute or speaker presence
    changed in the batch,
    in the order of each session's first record."""
    first: dict[str, tuple | None] = {}
    sequence: dict[str, str] = {}
    latest: dict[str, StatusChange] = {}
    for written in stored_sessions.written_states(records):
        session_id, state = written.sessionId, written.state
        first.setdefault(session_id, written.before)
        sequence.setdefault(session_id, written.sequence)
        if state.status == ENDED:
            latest.pop(session_id, None)  # teardown says goodbye instead
            continue
        if first[session_id] == state:
            latest.pop(session_id, None)  # back where the batch found it
            continue
        latest[session_id] = StatusChange(session_id, state.status, state.listenerCount, state.muted,
                                          written.languages, first[session_id], written.version, written.expiresAt,
                                          sequence[session_id], written.speaker, written.speakerDisconnectedAt)
    return dict(sorted(latest.items(), key=lambda pair: _ordinal(pair[1].sequence)))


def _ordinal(sequence: str) -> int:
    return int(sequence) if sequence.isdigit() else 0


def broadcast(session_id: str, message: dict | Callable[[Connection], dict | None], only: str | None = None) -> Delivery:
    """Posts `message` (or what it makes of each connection) to each connection of the session, or to the
    connection `only` names; drops the gone ones (at most MAX_DROPS, their deletes at once, their count taken
    off in one write). A gone listener whose record this removed counts as ListenerLeft (its own $disconnect
    then finds nothing)."""
    sent = connecting = 0
    gone: list[Connection] = []
    connecting_since = int(time.time()) - CONNECTING_SECONDS
    shaped = message if callable(message) else (lambda connection: message)
    with ThreadPoolExecutor(POST_THREADS) as pool:
        # Every page's posts are queued as soon as it is read, not after the page before has been posted:
        # the next Query overlaps the posts, and no page waits for the slowest post of the one before.
        posting = [(c, pool.submit(management.offer, c.connectionId, m))
                   for page in _pages(session_id, only) for c in page if (m := shaped(c)) is not None]
        for connection, post in posting:
            delivered = post.result()
            if delivered:
                sent += 1
            elif delivered is None:
                continue  # a transient failure on one socket must not hold back the others
            elif connection.connectedAt > connecting_since:
                connecting += 1
            else:
                gone.append(connection)
        if gone:
            drop_gone(session_id, gone[:MAX_DROPS], pool)
    return Delivery(sent, len(gone), connecting)


def _pages(session_id: str, only: str | None):
    """The session's connections a page at a time, or the one `only` names ("": none)."""
    if only is None:
        yield from stored_connections.pages(session_id)
    elif only:
        yield [c for c in [stored_connections.listed(session_id, only)] if c is not None]


def drop_gone(session_id: str, gone: list[Connection], pool: ThreadPoolExecutor) -> None:
    """Drops the records of gone sockets (their count taken off in one write); a speaker among them released."""
    listeners = stored_connections.remove_gone(session_id, gone, pool.map)
    for connection in gone:
        if connection.role == SPEAKER:
            stored_connections.release_speaker(session_id, connection.connectionId)
    if listeners:
        metric("ListenerLeft", listeners)  # only those whose record this removed: each leave counts once


def broadcast_changes(records: list[dict], shape: Shape) -> tuple[dict, list[str]]:
    """Tells the sockets of each session the stream records changed its new state, each as `shape` says:
    the batch's summary, and the records to report as failed (each failed session's first one; Lambda
    retries the batch from the earliest)."""
    changed = changed_sessions(records)
    sent = gone = skipped = 0
    failed: list[str] = []
    for session_id, change in changed.items():
        try:
            if not stored_sessions.claim_broadcast(session_id, change.version, change.expiresAt):
                skipped += 1  # its sockets were told a newer version already
                continue
            delivery = broadcast(session_id, lambda connection, change=change: shape(connection, change),
                                 only=None if change.for_everyone() else change.speaker)
        except Exception:  # noqa: BLE001 - one session's failure must not fail the others
            logger.exception("status broadcast failed", extra={"sessionId": session_id})
            failed.append(change.sequence)
            continue
        sent, gone = sent + delivery.sent, gone + delivery.gone
        logger.info("status broadcast", extra={"sessionId": session_id, **delivery._asdict(),
                                               "audience": "all" if change.for_everyone() else "speaker"})
    return {"sessions": len(changed), "sent": sent, "gone": gone, "skipped": skipped, "failed": len(failed)}, failed
