"""Joining and leaving a session over the WebSocket, a listener's language, and
the legacy way of creating a session from a speaker connection."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .. import errors
from ..data import connections as stored_connections
from ..domain import LISTENER, SPEAKER, SUPPORTED_LANGUAGES, ConnectionContext
from ..platform import management
from ..platform.observability import logger, metric
from ..platform.settings import settings

if TYPE_CHECKING:  # a request body (models.py): only the old protocol's createSession loads it
    from ..domain import Session
    from ..models import CreateSessionRequest


def join(connection_id: str, who: ConnectionContext, *, describe: bool = False,
         refreshing: bool = False, join_key: str | None = None) -> Session | None:
    """Records the connection. A second speaker connection replaces the first (a reconnecting speaker
    must not be locked out by its own dead socket): the first is told and closed, unless this one is
    its refresh (the client closes the old one itself once the new one is complete).
    A signed-in listener joins by the session ID alone (accountable: sign-up is closed); an anonymous one
    needs `join_key`, the key of the session's link, unless the session is public.
    With `describe`, the session as the join left it (read from the join's own write)."""
    if who.legacy and not who.sessionId:
        return None  # no session yet: createSession links one
    if who.role == SPEAKER:
        previous, item = stored_connections.add_speaker(who.sessionId, connection_id, who.userId, who.dialect)
        if previous and not refreshing:
            logger.info("speaker connection replaced", extra={"previousConnectionId": previous})
            management.post(previous, {"type": "error", "code": "SPEAKER_REPLACED",
                                       "message": "Another connection of this speaker took over the session."})
            management.disconnect(previous)
    else:
        item = stored_connections.add_listener(who.sessionId, connection_id, who.userId, who.targetLanguage,
                                               settings().max_listeners, who.dialect,
                                               join_key=None if who.userId else (join_key or ""),
                                               delivery=who.delivery)
        metric("ListenerJoined")
    if not describe:
        return None
    from ..data.sessions import from_item, get

    # A retried $connect recorded nothing new and read nothing: read the session.
    return from_item(item) if item else get(who.sessionId, _now())


def leave(connection_id: str, who: ConnectionContext) -> None:
    """Removes the connection. The session stays, except one created over the WebSocket, which lives as
    long as its speaker's connection: it ends when that connection closes (not a replaced one's)."""
    session_id = session_of(connection_id, who, required=False)
    if not session_id:
        return
    removed = stored_connections.remove(session_id, connection_id, who.role)
    if removed and who.role != SPEAKER:
        metric("ListenerLeft")
    if who.legacy:
        from .sessions import end_session

        stored_connections.unlink_legacy(connection_id)
        if removed:
            end_session(session_id, who.userId)


def abandon(connection_id: str, who: ConnectionContext) -> None:
    """Undoes a join whose handshake fails after it (no $disconnect will come): the connection is removed and a
    session it created ends, with no teardown (it has no other socket yet)."""
    session_id = session_of(connection_id, who, required=False)
    if not session_id:
        return
    stored_connections.remove(session_id, connection_id, who.role)
    if who.legacy and not who.sessionId:
        from .sessions import end_session

        stored_connections.unlink_legacy(connection_id)
        end_session(session_id, who.userId, disconnect_sockets=False)


def session_of(connection_id: str, who: ConnectionContext, required: bool = True) -> str | None:
    session_id = who.sessionId or (stored_connections.legacy_session_of(connection_id) if who.legacy else None)
    if not session_id and required:
        raise errors.SessionNotFound("This connection has no session yet; send createSession first.")
    return session_id


def switch_language(connection_id: str, who: ConnectionContext, language: object) -> str:
    """Moves a listener to another target language (its record and the session's counts by language)."""
    if who.role != LISTENER:
        raise errors.ListenerOnly()
    if language not in SUPPORTED_LANGUAGES:
        raise errors.UnsupportedLanguage()
    stored_connections.switch_language(session_of(connection_id, who), connection_id, language, who.dialect,
                                       who.delivery)
    return language


def create_legacy_session(connection_id: str, who: ConnectionContext, request: CreateSessionRequest) -> Session:
    from .sessions import WEBSOCKET_API, create_session, end_session

    if who.role != SPEAKER:
        raise errors.SpeakerOnly()
    if not who.legacy or who.sessionId or stored_connections.legacy_session_of(connection_id):
        raise errors.AlreadyInSession()
    session = create_session(who.userId, request, api=WEBSOCKET_API)
    try:
        stored_connections.link_legacy(connection_id, session.sessionId)
    except errors.AlreadyInSession:
        end_session(session.sessionId, who.userId, disconnect_sockets=False)  # lost a race; no sockets yet
        raise
    stored_connections.add_speaker(session.sessionId, connection_id, who.userId, who.dialect)
    metric("LegacySessionCreation")
    return session


def _now() -> int:
    return int(time.time())
