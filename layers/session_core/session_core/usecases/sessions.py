"""Session use cases: what the handlers call, one function per operation."""

from __future__ import annotations

import time

from .. import errors
from ..data import sessions as stored_sessions
from ..data.sessions import SessionAlreadyEnded, SessionIdTaken
from ..domain import ACTIVE, ENDED
from ..models import CreateSessionRequest, Session, UpdateSessionRequest
from ..platform.observability import metric
from ..platform.settings import settings
from ..session_ids import is_valid_session_id, new_session_id

# The `api` dimension of SessionCreated: POST /sessions, or the legacy
# createSession WebSocket message.
HTTP_API, WEBSOCKET_API = "http", "websocket"

# With ~25 million IDs and a million live sessions a draw collides 4 % of the
# time, so ten draws all colliding is a ~1e-14 event.
MAX_ID_ATTEMPTS = 10


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

    first = idempotency.once(lambda: _create(speaker_id, request, api).model_dump(), speaker_id, idempotency_key,
                             request.model_dump(), lambda_context)
    return Session.model_validate(first)


def _create(speaker_id: str, request: CreateSessionRequest, api: str) -> Session:
    now = _now()
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
        )
        try:
            stored_sessions.create(session)
        except SessionIdTaken:
            continue
        metric("SessionCreated", api=api)
        return session
    raise errors.SessionIdExhausted()


def get_session(session_id: str) -> Session:
    return stored_sessions.get(checked_session_id(session_id), _now())


def update_session(session_id: str, caller_id: str, request: UpdateSessionRequest,
                   expected_version: int | None = None) -> Session:
    session_id = checked_session_id(session_id)
    try:
        session = stored_sessions.update(session_id, caller_id, request.changes(), _now(), expected_version)
    except SessionAlreadyEnded as ended:
        if request.status == ENDED:
            # The owner retrying an end whose teardown start may have failed.
            _start_teardown(ended.session)
        raise
    if request.status == ENDED:
        metric("SessionEnded")
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
    if disconnect_sockets:
        _start_teardown(session)
    return ended_now


def _start_teardown(session: Session) -> None:
    # Imported on first use: GET, create and a PATCH that does not end the session never need it.
    from . import teardown

    teardown.start(session)
