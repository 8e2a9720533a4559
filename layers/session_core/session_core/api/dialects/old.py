"""The old protocol (.kiro/specs/session-management-websocket/design.md and its example clients): a
connection whose query names an `action`.

  ?token=JWT&action=createSession&sourceLanguage=en&qualityTier=standard   a speaker creates its session
  ?action=joinSession&sessionId=ID&targetLanguage=es                       a listener joins
  ?action=refreshConnection&sessionId=ID&role=speaker|listener[&token][&targetLanguage]
                                                                           the same, before the 2-hour limit

How their queries are read: queries.py. The client then waits, sending nothing, for sessionCreated, sessionJoined or connectionRefreshComplete:
$connect cannot post to its own connection, so the welcome function delivers it (usecases/welcome.py).
A session created here ends when its speaker's connection closes, as the old protocol had it (a refreshed
connection takes that over). Messages: sendAudio {sessionId, audioData}, controlSession {sessionId,
command}, changeLanguage {sessionId, targetLanguage}, heartbeat, and the renamed ones (renamed.py).
Everything here counts LegacyProtocolMessage (dialect "old") and is switched off with
LegacyWebSocketSessionCreation.
"""

from __future__ import annotations

import time

from ... import errors
from ...domain import ACTIVE, LISTENER, PAUSED, PUBLIC, QUALITY_TIERS, SUPPORTED_LANGUAGES
from ...usecases import audio, membership, teardown, welcome
from ..ws import WsRequest, require_speaker
from . import renamed, welcome_state
from .queries import CREATE, JOIN, REFRESH
from .renamed import accept, own_session


def connect(request: WsRequest) -> None:
    """Creates or joins as the query says, then has the client's unasked message delivered after the handshake."""
    who, action = request.connection, request.query.get("action")
    if action == CREATE:
        session = _create(request)
        message = renamed.session_created(session, request.connection_id)
    else:
        session = membership.join(request.connection_id, who, describe=True, refreshing=action == REFRESH,
                                  join_key=request.query.get("joinKey"))
        message = _joined(request, session) if action == JOIN else _refreshed(request, session)
    try:
        # A listener is then told a pause it joined in (sessionPaused).
        welcome.schedule(request.connection_id, message, welcome_state(request) if who.role == LISTENER else None)
    except errors.ServiceError:
        # The handshake fails (5xx) and no $disconnect will come: undo the join (a created session ends with it).
        membership.abandon(request.connection_id, who)
        raise


def _joined(request: WsRequest, session) -> dict:
    who = request.connection
    return {"type": "sessionJoined", "sessionId": session.sessionId,
            "targetLanguage": who.targetLanguage or session.sourceLanguage, "sourceLanguage": session.sourceLanguage,
            "qualityTier": session.qualityTier, "listenerCount": session.listenerCount,
            "speakerConnected": session.speakerConnectionId is not None,
            "connectionId": request.connection_id, "timestamp": int(time.time() * 1000)}


def _refreshed(request: WsRequest, session) -> dict:
    who = request.connection
    message = {"type": "connectionRefreshComplete", "sessionId": session.sessionId, "role": who.role,
               "newConnectionId": request.connection_id, "timestamp": int(time.time() * 1000)}
    if who.role == LISTENER:
        message["targetLanguage"] = who.targetLanguage or session.sourceLanguage
    return message


def _create(request: WsRequest):
    from ...models import CreateSessionRequest  # pydantic_core: only a creating connection needs it

    language = request.query.get("sourceLanguage")
    tier = request.query.get("qualityTier") or "standard"
    if language not in SUPPORTED_LANGUAGES or tier not in QUALITY_TIERS:
        raise errors.ValidationError("sourceLanguage and qualityTier must be supported values.")
    return membership.create_legacy_session(request.connection_id, request.connection,
                                            # Public, as the old protocol's sessions always were.
                                            CreateSessionRequest(sourceLanguage=language, qualityTier=tier,
                                                                 access=PUBLIC))


def send_audio(request: WsRequest) -> None:
    """sendAudio {sessionId, audioData}: the example speakers' audio, without a sequence number."""
    fields = accept(request, ("sessionId", "audioData"))
    require_speaker(request)
    try:
        chunk = audio.chunk(fields.get("audioData"))
    except errors.InvalidAudio:
        raise errors.InvalidAudio("audioData must be base64-encoded audio.") from None
    audio.receive(own_session(request, fields, required=False), chunk)


def control(request: WsRequest) -> None:
    """controlSession {sessionId, command: pause | resume | mute | unmute}; listeners are told (sessionPaused...)."""
    fields = accept(request, ("sessionId", "command"))
    require_speaker(request)
    if fields.get("command") not in audio.CONTROLS:
        raise errors.ValidationError("command must be pause, resume, mute or unmute.")
    audio.control(own_session(request, fields, required=False), request.connection.userId, fields["command"])


def change_language(request: WsRequest) -> None:
    """changeLanguage {sessionId, targetLanguage}: the example listeners' language switch."""
    fields = accept(request, ("sessionId", "targetLanguage"))
    own_session(request, fields, required=False)
    membership.switch_language(request.connection_id, request.connection, fields.get("targetLanguage"))


ROUTES = {**renamed.ROUTES, "sendAudio": send_audio, "controlSession": control, "changeLanguage": change_language,
          "switchLanguage": change_language}

# The example listeners react to sessionPaused and sessionResumed; they know no mute and no counts.
_LISTENER_NEWS = {PAUSED: "sessionPaused", ACTIVE: "sessionResumed"}


def status_message(role: str, change) -> dict | None:
    if role == LISTENER and change.status_changed() and change.status in _LISTENER_NEWS:
        return {"type": _LISTENER_NEWS[change.status], "sessionId": change.sessionId,
                "timestamp": int(time.time() * 1000)}
    return None  # the example speakers handle no status message


def welcome_messages(role: str, session) -> list[dict]:
    """A listener who joined a paused session is told so, as it would have been of the pause."""
    if role == LISTENER and session.status == PAUSED:
        return [{"type": "sessionPaused", "sessionId": session.sessionId, "timestamp": int(time.time() * 1000)}]
    return []


def ended_message(session_id: str) -> dict:
    # The published clients read `reason` (the hybrid type file) and a `timestamp` in ms.
    return {**teardown.ended_message(session_id), "reason": "ended", "timestamp": int(time.time() * 1000)}


def audio_message(chunk) -> dict:
    # The example listeners dispatch on type "audioData" and play its `audioData` (base64).
    return {"type": "audioData", "sessionId": chunk.sessionId, "targetLanguage": chunk.language,
            "audioData": chunk.audioData, "sequenceNumber": chunk.sequenceNumber, "format": "pcm",
            "sampleRate": chunk.sampleRate, "channels": chunk.channels, "timestamp": chunk.timestamp}


def referenced_message(chunk) -> None:
    del chunk  # the old listeners play inline audio only, and are never keyed for referenced chunks
