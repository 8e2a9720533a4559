"""Session use cases: what the handlers call, one function per operation."""

from __future__ import annotations

import dataclasses
import secrets
import time
from typing import TYPE_CHECKING

from .. import errors
from ..data import live_sessions
from ..data import sessions as stored_sessions
from ..data.sessions import SessionAlreadyEnded, SessionIdTaken
from ..domain import ACTIVE, ENDED, LINK, Session
from ..platform.observability import logger, metric
from ..platform.settings import settings
from ..session_ids import is_valid_session_id, new_session_id

if TYPE_CHECKING:  # the request bodies (models.py): only the functions that parse a body load them
    from ..models import CreateSessionRequest, UpdateSessionRequest

# The `api` dimension of SessionCreated: POST /sessions, or the legacy
# createSession WebSocket message.
HTTP_API, WEBSOCKET_API = "http", "websocket"

# With ~25 million IDs and a million live sessions a draw collides 4 % of the
# time, so ten draws all colliding is a ~1e-14 event.
MAX_ID_ATTEMPTS = 10
# A link session's join key: 24 random bytes (192 bits), URL-safe base64 (32 characters). Session IDs are
# guessable (about 24.7 bits); the key is what keeps an anonymous listener out.
JOIN_KEY_BYTES = 24


def _now() -> int:
    return int(time.time())


def checked_session_id(value: object) -> str:
    if not is_valid_session_id(value):
        raise errors.InvalidSessionId()
    return value  # type: ignore[return-value]


def create_session(speaker_id: str, request: CreateSessionRequest, idempotency_key: str | None = None,
                   lambda_context: object = None, api: str = HTTP_API) -> Session:
    """Creates a session. With an idempotency key, a repeat of the same request
    (a retry, an offline replay) returns the first session instead (and is not
    counted again)."""
    if idempotency_key is None:
        return _create(speaker_id, request, api)
    from ..data import idempotency  # only the create function pays for importing it

    first = idempotency.once(lambda: _create(speaker_id, request, api).as_dict(), speaker_id, idempotency_key,
                             dataclasses.asdict(request), lambda_context)
    return Session(**first)


def _create(speaker_id: str, request: CreateSessionRequest, api: str) -> Session:
    now = _now()
    join_key = secrets.token_urlsafe(JOIN_KEY_BYTES) if request.access == LINK else None
    for _ in range(MAX_ID_ATTEMPTS):
        session = Session(
            sessionId=new_session_id(),
            speakerId=speaker_id,
            sourceLanguage=request.sourceLanguage,
            qualityTier=request.qualityTier,
            status=ACTIVE,
            partialResultsEnabled=request.partialResultsEnabled,
            minStabilityThreshold=request.minStabilityThreshold,
            maxBufferTimeout=request.maxBufferTimeout,
            listenerCount=0,
            createdAt=now,
            updatedAt=now,
            expiresAt=now + settings().session_ttl_seconds,
            version=1,
            access=request.access,
            joinKey=join_key,
        )
        # The place first: a session never exists uncounted (docs/architecture.md, "Live sessions per user").
        live_sessions.claim(speaker_id, session.sessionId, session.expiresAt, now, settings().max_live_sessions)
        try:
            stored_sessions.create(session)
        except SessionIdTaken:
            live_sessions.release(speaker_id, session.sessionId)
            continue
        except errors.ServiceError:
            _release_quietly(speaker_id, session.sessionId)
            raise
        metric("SessionCreated", api=api)
        return session
    raise errors.SessionIdExhausted()


def _release_quietly(speaker_id: str, session_id: str) -> None:
    try:
        live_sessions.release(speaker_id, session_id)
    except errors.ServiceUnavailable:
        # Held until the would-be session's expiresAt, when the next claim drops it.
        logger.warning("live-session place left held")


def for_viewer(session: Session, viewer_id: str | None) -> Session:
    """The session as `viewer_id` may see it: the join key is its owner's alone."""
    if session.joinKey is None or viewer_id == session.speakerId:
        return session
    return dataclasses.replace(session, joinKey=None)


def get_session(session_id: str, viewer_id: str | None = None) -> Session:
    """The session; its join key only if `viewer_id` is its owner."""
    return for_viewer(stored_sessions.get(checked_session_id(session_id), _now()), viewer_id)


def update_session(session_id: str, caller_id: str, request: UpdateSessionRequest,
                   expected_version: int | None = None) -> Session:
    """PATCH /sessions/{id}."""
    return change(checked_session_id(session_id), caller_id, request.changes(), expected_version)


def change(session_id: str, caller_id: str, changes: dict[str, str | bool],
           expected_version: int | None = None) -> Session:
    """The one way the owner changes a live session, whoever asks: PATCH, and the speaker's pause, resume, mute
    and unmute over the WebSocket (usecases/audio.py, which also forwards a resume's paused audio at once; after
    a PATCH the next chunk does). One conditional write; an end also frees the owner's place and starts the
    teardown, again if the session had ended already (a retry whose first try failed after the write)."""
    try:
        session = stored_sessions.update(session_id, caller_id, changes, _now(), expected_version)
    except SessionAlreadyEnded as ended:
        if changes.get("status") == ENDED:
            # The owner retrying an end whose place release or teardown start may have failed.
            live_sessions.release(caller_id, session_id)
            _start_teardown(ended.session)
        raise
    if changes.get("status") == ENDED:
        metric("SessionEnded")
        live_sessions.release(caller_id, session_id)
        _start_teardown(session)
    return session


def end_session(session_id: str, caller_id: str, disconnect_sockets: bool = True) -> bool:
    """Marks the session ended and starts the teardown of its sockets.
    Returns False if it had ended already. A repeat starts the teardown again,
    in case the first call failed after ending the session: Step Functions
    refuses the duplicate execution name, so there is still only one."""
    session_id = checked_session_id(session_id)
    try:
        session = stored_sessions.update(session_id, caller_id, {"status": ENDED}, _now())
        ended_now = True
        metric("SessionEnded")
    except SessionAlreadyEnded as ended:
        session, ended_now = ended.session, False
    # Every time, not only the first: a repeat frees the place if the first call failed before it (idempotent).
    live_sessions.release(caller_id, session_id)
    if disconnect_sockets:
        _start_teardown(session)
    return ended_now


def _start_teardown(session: Session) -> None:
    # Imported on first use: GET, create and a PATCH that does not end the session never need it.
    from . import teardown

    teardown.start(session)
