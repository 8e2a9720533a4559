"""The sweep: every minute (an EventBridge schedule), each listed session is put right from what is true
of it, not from what its writers managed to record (docs/architecture.md, "The sweep"):

- expired but not ended (TTL deletes lazily, and nothing else ends it): ended and torn down;
- ended over the old protocol's socket whose $disconnect never came (API Gateway's delivery of it is
  best-effort): ended and torn down once that socket is gone;
- ended but its teardown not complete: the teardown started again (harmless while one runs);
- live: records of sockets that are gone (a lost $disconnect) dropped, then the listener counts recounted from
  the records (a retried ADD, a $connect killed between its two writes).
A session whose teardown completed, or whose item and records are both gone, is no longer listed.
"""

from __future__ import annotations

import time
import zlib
from concurrent.futures import ThreadPoolExecutor

from ..data import connections as stored_connections
from ..data import sessions as stored_sessions
from ..data.sessions import LiveSession
from ..domain import ENDED, SPEAKER
from ..platform import management
from ..platform.observability import logger, metric
from . import broadcast, teardown

# Sessions swept at once, and sockets probed at once within one session.
SESSION_THREADS = 8
PROBE_THREADS = 16
# Sockets probed per session and sweep (GetConnection, ~20 ms): a larger session is probed a share at a time,
# each socket once every ceil(n / PROBES_PER_SWEEP) sweeps (10,000 listeners: every 10 minutes).
PROBES_PER_SWEEP = 1000
SWEEP_PERIOD_SECONDS = 60


def sweep_all() -> dict:
    """Sweeps every listed session; the run's summary."""
    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(SESSION_THREADS) as pool:
        for outcome in pool.map(_sweep_safely, stored_sessions.live_sessions()):
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def _sweep_safely(live: LiveSession) -> str:
    try:
        return sweep(live)
    except Exception:  # noqa: BLE001 - one session's trouble must not stop the others; the next sweep retries
        logger.exception("sweep failed", extra={"sessionId": live.sessionId})
        return "failed"


def sweep(live: LiveSession, now: int | None = None) -> str:
    """Puts one session right; what was done."""
    now = now or int(time.time())
    session = stored_sessions.read(live.sessionId)
    if session is None:  # deleted by TTL: its sockets may still be recorded
        if next(iter(stored_connections.pages(live.sessionId, limit=1)), []):
            teardown.start(live)
            return "tornDown"
        stored_sessions.forget_live(live.sessionId)
        return "forgotten"
    if session.teardownCompletedAt is not None:
        stored_sessions.forget_live(live.sessionId)
        return "forgotten"
    if session.status == ENDED:
        teardown.start(live)
        return "teardownResumed"
    if session.is_expired(now):
        return _end(live, now, "expired")
    speaker = session.speakerConnectionId
    if speaker and stored_connections.legacy_session_of(speaker) == live.sessionId and not _open(speaker, live, now):
        return _end(live, now, "speakerGone")
    _drop_gone(live.sessionId, now)
    stored_connections.recount(live.sessionId)
    return "checked"


def _end(live: LiveSession, now: int, reason: str) -> str:
    if stored_sessions.end_by_service(live.sessionId, now):
        metric("SessionEnded")
        logger.info("session ended by the sweep", extra={"sessionId": live.sessionId, "reason": reason})
    teardown.start(live)
    return reason


def _open(connection_id: str, live: LiveSession, now: int) -> bool:
    """Whether the socket is open, or may still be opening (recorded less than 30 s ago, see broadcast)."""
    if management.exists(connection_id):
        return True
    for page in stored_connections.pages(live.sessionId):
        for connection in page:
            if connection.connectionId == connection_id:
                return connection.connectedAt > now - broadcast.CONNECTING_SECONDS
    return False


def _drop_gone(session_id: str, now: int) -> None:
    connections = [c for page in stored_connections.pages(session_id, limit=1000) for c in page
                   if c.connectedAt <= now - broadcast.CONNECTING_SECONDS]
    shares = -(-len(connections) // PROBES_PER_SWEEP)
    if shares > 1:
        turn = (now // SWEEP_PERIOD_SECONDS) % shares
        connections = [c for c in connections if zlib.crc32(c.connectionId.encode()) % shares == turn]
    with ThreadPoolExecutor(PROBE_THREADS) as pool:
        gone = [c for c, there in zip(connections, pool.map(lambda c: management.exists(c.connectionId),
                                                             connections)) if not there]
    if gone:
        stored_connections.drop(session_id, gone)
        for connection in gone:
            if connection.role == SPEAKER:
                stored_connections.release_speaker(session_id, connection.connectionId)
        metric("ListenerLeft", sum(c.role != SPEAKER for c in gone))
        logger.info("gone connections dropped", extra={"sessionId": session_id, "gone": len(gone)})
