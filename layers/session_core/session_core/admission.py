"""Who may open a WebSocket connection, decided once at $connect by the
Lambda authorizer:

- speaker: a valid token, and the token's user owns the session, which exists
  and is not ended; or, while legacy creation is enabled, no sessionId at all
  (the connection may then create its session with a createSession message);
- listener: a valid token, or none while anonymous listeners are allowed; the
  session exists, is not ended, and has room under the listener cap.

Token problems are Unauthorized (401); everything else is a refusal with a
reason (403). The reason goes to the log, never to the caller.
"""

from __future__ import annotations

import time

from . import errors
from .models import ENDED, LISTENER, SPEAKER, SUPPORTED_LANGUAGES, ConnectionContext, Session
from .sessions import get_session
from .settings import settings


# A live session read in the last few seconds is not read again (a crowd joining
# one session costs one GetItem, not one each). This lookup is only an early
# refusal: $connect's conditional write re-checks existence, ended, expiry, the
# listener cap and the speaker's ownership. So an entry at most SESSION_CACHE_SECONDS
# stale can only let through to $connect a connection that $connect then refuses
# (still a 403); the owner never changes. Missing and ended sessions are not cached.
SESSION_CACHE_SECONDS = 5.0
SESSION_CACHE_SIZE = 1024
_live: dict[str, tuple[float, Session]] = {}


class Refused(errors.ServiceError):
    status, code = 403, "CONNECTION_REFUSED"


def user_of(token: str | None) -> str:
    # PyJWT and cryptography load on the first token, not at cold start: an
    # anonymous listener's authorizer never needs them.
    from .auth import InvalidToken, configured_verifier
    try:
        return configured_verifier().verify(token)["sub"]
    except InvalidToken as exc:
        raise errors.Unauthorized(str(exc)) from None


def admit(query: dict[str, str], authorization_header: str | None = None) -> ConnectionContext:
    token = query.get("token") or authorization_header
    role = query.get("role", "")
    session_id = query.get("sessionId", "")
    if role == SPEAKER:
        user_id = user_of(token)
        if not session_id:
            if not settings().legacy_creation_enabled:
                raise Refused("LEGACY_CREATION_DISABLED")
            return ConnectionContext(role=SPEAKER, userId=user_id, legacy=True)
        session = _live_session(session_id)
        if session.speakerId != user_id:
            raise Refused("NOT_SESSION_OWNER")
        return ConnectionContext(sessionId=session_id, role=SPEAKER, userId=user_id)
    if role == LISTENER:
        if token:
            user_id = user_of(token)
        elif settings().allow_anonymous_listeners:
            user_id = ""
        else:
            raise errors.Unauthorized("token required")
        target = query.get("targetLanguage", "")
        if target and target not in SUPPORTED_LANGUAGES:
            raise Refused("UNSUPPORTED_TARGET_LANGUAGE")
        session = _live_session(session_id)
        # A fast early refusal; $connect enforces the cap atomically.
        if session.listenerCount >= settings().max_listeners:
            raise Refused("SESSION_FULL")
        return ConnectionContext(sessionId=session_id, role=LISTENER, userId=user_id, targetLanguage=target)
    raise Refused("INVALID_ROLE")


def _live_session(session_id: str) -> Session:
    now = time.monotonic()
    cached = _live.get(session_id)
    if cached and cached[0] > now:
        return cached[1]
    try:
        session = get_session(session_id)
    except (errors.InvalidSessionId, errors.SessionNotFound) as exc:
        raise Refused(exc.code) from None
    if session.status == ENDED:
        _live.pop(session_id, None)
        raise Refused("SESSION_ENDED")
    if len(_live) >= SESSION_CACHE_SIZE:
        _live.clear()  # a crude bound: a warm container rarely sees that many sessions in 5 s
    _live[session_id] = (now + SESSION_CACHE_SECONDS, session)
    return session
