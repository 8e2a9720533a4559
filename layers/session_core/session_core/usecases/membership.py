"""Joining and leaving a session over the WebSocket, and the legacy way of
creating a session from a speaker connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import errors
from ..data import connections as stored_connections
from ..domain import SPEAKER, ConnectionContext
from ..platform import management
from ..platform.observability import logger, metric
from ..platform.settings import settings

if TYPE_CHECKING:  # pydantic's models: $connect and $disconnect start without them
    from ..models import CreateSessionRequest, Session


def join(connection_id: str, who: ConnectionContext) -> None:
    """Records the connection. A second speaker connection replaces the first
    (a reconnecting speaker must not be locked out by its own dead socket)."""
    if who.legacy:
        return  # no session yet: createSession links one
    if who.role == SPEAKER:
        previous = stored_connections.add_speaker(who.sessionId, connection_id, who.userId)
        if previous:
            logger.info("speaker connection replaced", extra={"previousConnectionId": previous})
            management.post(previous, {"type": "error", "code": "SPEAKER_REPLACED",
                                       "message": "Another connection of this speaker took over the session."})
            management.disconnect(previous)
        return
    stored_connections.add_listener(who.sessionId, connection_id, who.userId, who.targetLanguage,
                               settings().max_listeners)
    metric("ListenerJoined")


def leave(connection_id: str, who: ConnectionContext) -> None:
    """Removes the connection. The session stays, except a legacy session,
    which lived exactly as long as the socket that created it."""
    session_id = session_of(connection_id, who, required=False)
    if not session_id:
        return
    removed = stored_connections.remove(session_id, connection_id, who.role)
    if removed and who.role != SPEAKER:
        metric("ListenerLeft")
    if who.legacy:
        from .sessions import end_session

        stored_connections.unlink_legacy(connection_id)
        end_session(session_id, who.userId)


def session_of(connection_id: str, who: ConnectionContext, required: bool = True) -> str | None:
    session_id = who.sessionId or (stored_connections.legacy_session_of(connection_id) if who.legacy else None)
    if not session_id and required:
        raise errors.SessionNotFound("This connection has no session yet; send createSession first.")
    return session_id


def create_legacy_session(connection_id: str, who: ConnectionContext, request: CreateSessionRequest) -> Session:
    from .sessions import WEBSOCKET_API, create_session, end_session

    if who.role != SPEAKER:
        raise errors.SpeakerOnly()
    if not who.legacy or stored_connections.legacy_session_of(connection_id):
        raise errors.AlreadyInSession()
    session = create_session(who.userId, request, api=WEBSOCKET_API)
    try:
        stored_connections.link_legacy(connection_id, session.sessionId)
    except errors.AlreadyInSession:
        end_session(session.sessionId, who.userId, disconnect_sockets=False)  # lost a race; no sockets yet
        raise
    stored_connections.add_speaker(session.sessionId, connection_id, who.userId)
    metric("LegacySessionCreation")
    return session
