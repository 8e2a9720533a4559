"""The old clients' WebSocket vocabulary (Requirement 9), served while
LegacyWebSocketSessionCreation is enabled, each message translated to the new
one and then held to exactly its rules, errors, pause buffer and records:

  createSession {sourceLanguage, qualityTier, partialResults, minStability, maxBufferTimeout}
      -> {"type": "sessionCreated", sessionId, sourceLanguage, qualityTier, partialResultsEnabled,
          minStabilityThreshold, maxBufferTimeout, connectionId, timestamp (epoch ms)}
  audioChunk {sessionId, audioData, chunkIndex}   = sendAudio {seq: chunkIndex, data: audioData}
  pauseBroadcast, resumeBroadcast [sessionId]     = pause, resume

Every old message counts LegacyProtocolMessage by action, answered or refused,
so the switch-off can be planned from data; switched off, each answers
LEGACY_CREATION_DISABLED. Old clients may send fields this server does not know:
they are ignored, not refused (the new messages stay strict), and logged once per
action and field name in an execution environment, not once per audio chunk.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict

from .. import errors
from ..models import (
    DEFAULT_MAX_BUFFER_TIMEOUT,
    DEFAULT_MIN_STABILITY,
    DEFAULT_PARTIAL_RESULTS,
    CreateSessionRequest,
    Language,
    MaxBufferTimeout,
    MinStabilityThreshold,
    QualityTier,
    Session,
)
from ..platform.observability import logger, metric
from ..platform.settings import settings
from ..usecases import audio, membership
from .validation import validated
from .ws import WsRequest, require_speaker

CREATE_SESSION, AUDIO_CHUNK, PAUSE_BROADCAST, RESUME_BROADCAST = (
    "createSession", "audioChunk", "pauseBroadcast", "resumeBroadcast")
STATUS_FOR = {PAUSE_BROADCAST: "paused", RESUME_BROADCAST: "active"}

# Ignored field names already logged here, bounded: names are the client's to choose.
_LOGGED_LIMIT = 256
_logged: set[tuple[str, str]] = set()
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


def _true_or_false(value: object) -> object:
    # Old clients send partialResults as a boolean or as the strings "true" / "false".
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


class LegacyCreateSession(BaseModel):
    # Strict like the new bodies (no "0.8" for 0.8); fields it does not name were dropped by accept().
    model_config = ConfigDict(strict=True, frozen=True, defer_build=True)  # built by the first createSession

    sourceLanguage: Language
    qualityTier: QualityTier = "standard"
    partialResults: Annotated[bool, BeforeValidator(_true_or_false)] = DEFAULT_PARTIAL_RESULTS
    minStability: MinStabilityThreshold = DEFAULT_MIN_STABILITY
    maxBufferTimeout: MaxBufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT

    def as_create_request(self) -> CreateSessionRequest:
        return CreateSessionRequest(sourceLanguage=self.sourceLanguage, qualityTier=self.qualityTier,
                                    partialResultsEnabled=self.partialResults,
                                    minStabilityThreshold=self.minStability, maxBufferTimeout=self.maxBufferTimeout)


def accept(action: str, message: dict, fields: Collection[str]) -> dict:
    """The old message's known fields. Counts it, refuses it while the old
    vocabulary is switched off, and drops (logging once) the fields it does not know."""
    metric("LegacyProtocolMessage", action=action)
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
    fields = accept(CREATE_SESSION, request.message(), LegacyCreateSession.model_fields)
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
    fields = accept(AUDIO_CHUNK, request.message(), ("sessionId", "audioData", "chunkIndex"))
    require_speaker(request)
    try:
        seq, data, _ = audio.parse_chunk({"seq": fields.get("chunkIndex"), "data": fields.get("audioData")})
    except errors.InvalidSeq:
        raise errors.InvalidSeq("chunkIndex must be a non-negative integer.") from None
    except errors.InvalidAudio:
        raise errors.InvalidAudio("audioData must be base64-encoded audio.") from None
    audio.receive(_own_session(request, fields, required=True), seq, data)


def control(request: WsRequest) -> Session:
    """pauseBroadcast / resumeBroadcast: pause / resume; a sessionId, if sent, must be the connection's own."""
    fields = accept(request.route_key, request.message(), ("sessionId",))
    require_speaker(request)
    return audio.set_status(_own_session(request, fields, required=False), request.connection.userId,
                            STATUS_FOR[request.route_key])


def _own_session(request: WsRequest, fields: dict, required: bool) -> str:
    session_id = membership.session_of(request.connection_id, request.connection)
    if (required or "sessionId" in fields) and fields.get("sessionId") != session_id:
        raise errors.NotThisSession()
    return session_id
