"""The old message names (Requirement 9), understood on a connection of any
dialect while LegacyWebSocketSessionCreation is enabled, each message translated
to the new one and then held to exactly its rules, errors, pause buffer and records:

  createSession {sourceLanguage, qualityTier, partialResults, minStability, maxBufferTimeout}
      -> {"type": "sessionCreated", sessionId, sourceLanguage, qualityTier, partialResultsEnabled,
          minStabilityThreshold, maxBufferTimeout, connectionId, timestamp (epoch ms)}
  audioChunk {sessionId, audioData, chunkIndex}   = sendAudio {seq: chunkIndex, data: audioData}
  pauseBroadcast, resumeBroadcast [sessionId]     = pause, resume

Every old message counts LegacyProtocolMessage by dialect and action, answered or
refused, so the switch-off can be planned from data; switched off, each answers
LEGACY_CREATION_DISABLED. Old clients may send fields this server does not know:
they are ignored, not refused (the new messages stay strict), and logged once per
action and field name in an execution environment, not once per audio chunk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

from ... import errors
from ...domain import PAUSE, RESUME
from ...platform.observability import logger, metric
from ...platform.settings import settings
from ...usecases import audio, membership
from ..ws import WsRequest, require_speaker, status_reply

CREATE_SESSION, AUDIO_CHUNK, PAUSE_BROADCAST, RESUME_BROADCAST = (
    "createSession", "audioChunk", "pauseBroadcast", "resumeBroadcast")
COMMAND_FOR = {PAUSE_BROADCAST: PAUSE, RESUME_BROADCAST: RESUME}

# Ignored field names already logged here, bounded: names are the client's to choose.
_LOGGED_LIMIT = 256
_logged: set[tuple[str, str]] = set()
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

if TYPE_CHECKING:
    from ...domain import Session


def accept(request: WsRequest, fields: Collection[str], action: str | None = None) -> dict:
    """The old message's known fields. Counts it, refuses it while the old
    vocabulary is switched off, and drops (logging once) the fields it does not know."""
    message = request.message()
    action = action or request.route_key
    metric("LegacyProtocolMessage", action=action, dialect=request.connection.dialect)
    if not settings().legacy_creation_enabled:
        raise errors.LegacyCreationDisabled(
            None if action == CREATE_SESSION else
            "The old WebSocket messages are switched off; use sendAudio, pause and resume.")
    _log_ignored(action, [name for name in message if name not in fields and name != "action"])
    return {name: value for name, value in message.items() if name in fields}


def _log_ignored(action: str, names: list[str]) -> None:
    new = []
    for name in names:
        shown = name if _PLAIN_NAME.fullmatch(name) else "<unprintable>"
        if (action, shown) not in _logged and len(_logged) < _LOGGED_LIMIT:
            _logged.add((action, shown))
            new.append(shown)
    if new:
        logger.info("legacy message fields ignored", extra={"action": action, "ignoredFields": new})


def create_session(request: WsRequest) -> dict:
    """createSession: a session tied to this socket, answered in the old clients' format."""
    from ...models import LegacyCreateSession
    from ..validation import validated

    fields = accept(request, LegacyCreateSession.field_names(), CREATE_SESSION)
    wanted = validated(LegacyCreateSession, fields)
    session = membership.create_legacy_session(request.connection_id, request.connection,
                                               wanted.as_create_request())
    return session_created(session, request.connection_id)


def session_created(session: Session, connection_id: str) -> dict:
    return {"type": "sessionCreated", "sessionId": session.sessionId, "sourceLanguage": session.sourceLanguage,
            "qualityTier": session.qualityTier, "partialResultsEnabled": session.partialResultsEnabled,
            "minStabilityThreshold": session.minStabilityThreshold, "maxBufferTimeout": session.maxBufferTimeout,
            "connectionId": connection_id, "timestamp": int(time.time() * 1000)}


def audio_chunk(request: WsRequest) -> None:
    """audioChunk: sendAudio with chunkIndex as the sequence number, into this connection's own session."""
    fields = accept(request, ("sessionId", "audioData", "chunkIndex"), AUDIO_CHUNK)
    require_speaker(request)
    try:
        chunk = audio.parse_chunk({"seq": fields.get("chunkIndex"), "data": fields.get("audioData")})
    except errors.InvalidSeq:
        raise errors.InvalidSeq("chunkIndex must be a non-negative integer.") from None
    except errors.InvalidAudio:
        raise errors.InvalidAudio("audioData must be base64-encoded audio.") from None
    audio.receive(own_session(request, fields, required=True), chunk)


def control(request: WsRequest) -> dict:
    """pauseBroadcast / resumeBroadcast: pause / resume; a sessionId, if sent, must be the connection's own."""
    fields = accept(request, ("sessionId",))
    require_speaker(request)
    return status_reply(audio.control(own_session(request, fields, required=False), request.connection.userId,
                                      COMMAND_FOR[request.route_key]))


def own_session(request: WsRequest, fields: dict, required: bool) -> str:
    """The connection's session; a sessionId in the message (required or not) must be it."""
    session_id = membership.session_of(request.connection_id, request.connection)
    if (required or "sessionId" in fields) and fields.get("sessionId") != session_id:
        raise errors.NotThisSession()
    return session_id


ROUTES = {CREATE_SESSION: create_session, AUDIO_CHUNK: audio_chunk, PAUSE_BROADCAST: control,
          RESUME_BROADCAST: control}
