"""The published hybrid front-end's WebSocket dialect (frontend-client-apps/shared/websocket/messageTypes.ts,
speaker-app SpeakerService, listener-app ListenerService): a connection whose query names neither `role`
nor `action`, as `?token=JWT&sessionId=ID` (a speaker, by owning the session) or
`?sessionId=ID&targetLanguage=es` (a listener).

Each message gets the answer, and each change the server message, that these clients' code reacts to
(docs/protocols.md has the table, and the deliberate differences). Every message counts
LegacyProtocolMessage (dialect "hybrid") and is switched off with LegacyWebSocketSessionCreation.
"""

from __future__ import annotations

import time

from ... import errors
from ...domain import ACTIVE, LISTENER, MUTE, PAUSE, PAUSED, RESUME, SPEAKER, UNMUTE
from ...platform.settings import settings
from ...usecases import audio, membership, sessions, teardown, welcome
from ..ws import WsRequest, require_speaker
from . import renamed, welcome_state
from .renamed import accept, own_session

# The listener app reacts to broadcast*; the speaker is answered with the type file's speaker* names.
_CONTROLS = {"pauseBroadcast": (PAUSE, "speakerPaused"), "resumeBroadcast": (RESUME, "speakerResumed"),
             "muteBroadcast": (MUTE, "speakerMuted"), "unmuteBroadcast": (UNMUTE, "speakerUnmuted")}


def connect(request: WsRequest) -> None:
    membership.join(request.connection_id, request.connection, join_key=request.query.get("joinKey"))
    welcome.schedule_state(request.connection_id, welcome_state(request))


def _now_ms() -> int:
    return int(time.time() * 1000)


def send_audio(request: WsRequest) -> None:
    """sendAudio {audioData, timestamp, chunkId, duration}: no sequence number (docs/protocols.md, "Audio order")."""
    fields = accept(request, ("audioData", "timestamp", "chunkId", "duration"))
    require_speaker(request)
    audio.receive(own_session(request, fields, required=False), _chunk(fields))


def audio_chunk(request: WsRequest) -> None:
    """The speaker app's audioChunk {sessionId, audioData, timestamp, format, ...}, without chunkIndex."""
    fields = accept(request, ("sessionId", "audioData", "timestamp", "chunkIndex"))
    require_speaker(request)
    audio.receive(own_session(request, fields, required=False), _chunk(fields))


def _chunk(fields: dict) -> audio.Chunk:
    seq = fields.get("chunkIndex")
    if seq is not None and (type(seq) is not int or seq < 0):
        raise errors.InvalidSeq("chunkIndex must be a non-negative integer.")
    chunk_id, timestamp = fields.get("chunkId"), fields.get("timestamp")
    try:
        return audio.chunk(fields.get("audioData"), seq=seq,
                           chunk_id=str(chunk_id)[:64] if isinstance(chunk_id, (str, int)) else None,
                           client_timestamp=int(timestamp) if type(timestamp) in (int, float) else None)
    except errors.InvalidAudio:
        raise errors.InvalidAudio("audioData must be base64-encoded audio.") from None


def control(request: WsRequest) -> dict:
    """pauseBroadcast, resumeBroadcast, muteBroadcast, unmuteBroadcast [sessionId]: the speaker's controls."""
    fields = accept(request, ("sessionId", "timestamp"))
    require_speaker(request)
    command, answer = _CONTROLS[request.route_key]
    session_id = own_session(request, fields, required=False)
    audio.control(session_id, request.connection.userId, command)
    return {"type": answer, "sessionId": session_id, "timestamp": _now_ms()}


def end_session(request: WsRequest) -> None:
    """endSession {sessionId, reason}: as DELETE /sessions/{id}; everyone, the speaker too, gets sessionEnded."""
    fields = accept(request, ("sessionId", "reason"))
    require_speaker(request)
    sessions.end_session(own_session(request, fields, required=False), request.connection.userId)


def session_status(request: WsRequest) -> dict:
    """getSessionStatus [sessionId]: the speaker app polls it every 5 s for its listener count."""
    fields = accept(request, ("sessionId",))
    return _session_status(sessions.get_session(own_session(request, fields, required=False)))


def _session_status(session) -> dict:
    now = _now_ms()
    return {"type": "sessionStatus", "sessionId": session.sessionId, "isActive": session.status == ACTIVE,
            "status": session.status, "listenerCount": session.listenerCount,
            "languageDistribution": session.language_distribution(),
            "speakerConnected": session.speakerConnectionId is not None,
            "sessionDuration": max(0, now - session.createdAt * 1000), "createdAt": session.createdAt * 1000,
            "expiresAt": session.expiresAt * 1000, "timestamp": now}


def join_session(request: WsRequest) -> dict:
    """joinSession {sessionId, targetLanguage}: the listener app's greeting after its handshake (the
    handshake joined already); a targetLanguage other than the connection's moves the listener to it."""
    fields = accept(request, ("sessionId", "targetLanguage"))
    if request.connection.role != LISTENER:
        raise errors.ListenerOnly("Only a listener joins a session; the speaker's connection is its own.")
    session_id = own_session(request, fields, required=False)
    language = fields.get("targetLanguage") or request.connection.targetLanguage
    if language != request.connection.targetLanguage:
        membership.switch_language(request.connection_id, request.connection, language)
    session = sessions.get_session(session_id)
    return {"type": "sessionJoined", "sessionId": session_id, "targetLanguage": language or session.sourceLanguage,
            "sourceLanguage": session.sourceLanguage, "qualityTier": session.qualityTier,
            "connectionId": request.connection_id, "listenerCount": session.listenerCount, "timestamp": _now_ms()}


def switch_language(request: WsRequest) -> None:
    """switchLanguage (the type file) or changeLanguage (the listener app) {targetLanguage}."""
    fields = accept(request, ("sessionId", "targetLanguage", "timestamp"))
    own_session(request, fields, required=False)
    membership.switch_language(request.connection_id, request.connection, fields.get("targetLanguage"))


def refresh_connection(request: WsRequest) -> dict:
    """refreshConnection [sessionId, targetLanguage]: complete on a connection opened to refresh (younger than
    the refresh age); an old connection cannot be refreshed in place: a new one must be opened."""
    fields = accept(request, ("sessionId", "targetLanguage"))
    session_id = own_session(request, fields, required=False)
    if _now_ms() - request.connected_at_ms >= settings().connection_refresh_seconds * 1000:
        raise errors.RefreshNeedsNewConnection()
    return {"type": "connectionRefreshComplete", "sessionId": session_id, "newConnectionId": request.connection_id,
            "role": request.connection.role, "timestamp": _now_ms()}


ROUTES = {"sendAudio": send_audio, "audioChunk": audio_chunk, **dict.fromkeys(_CONTROLS, control),
          "endSession": end_session, "getSessionStatus": session_status, "joinSession": join_session,
          "switchLanguage": switch_language, "changeLanguage": switch_language,
          "refreshConnection": refresh_connection, "createSession": renamed.create_session}

# A status change as the listener app reacts to it (broadcast*); the speaker app's listener counts as sessionStatus.
_LISTENER_NEWS = {PAUSED: "broadcastPaused", ACTIVE: "broadcastResumed"}


def status_message(role: str, change) -> dict | None:
    now = _now_ms()
    if role == SPEAKER:
        return {"type": "sessionStatus", "sessionId": change.sessionId, "isActive": change.status == ACTIVE,
                "status": change.status, "listenerCount": change.listenerCount,
                "languageDistribution": change.languages, "speakerConnected": change.speakerConnected,
                "timestamp": now}
    if change.muted_changed():
        return {"type": "broadcastMuted" if change.muted else "broadcastUnmuted", "sessionId": change.sessionId,
                "timestamp": now}
    if change.status_changed() and change.status in _LISTENER_NEWS:
        return {"type": _LISTENER_NEWS[change.status], "sessionId": change.sessionId, "timestamp": now}
    return None  # a count change: the listener app shows none


def welcome_messages(role: str, session) -> list[dict]:
    """The speaker app's count at once; the listener app's paused and muted notices, if the session is so."""
    if role == SPEAKER:
        return [_session_status(session)]
    notices = [("broadcastPaused", session.status == PAUSED), ("broadcastMuted", session.muted)]
    return [{"type": kind, "sessionId": session.sessionId, "timestamp": _now_ms()} for kind, so in notices if so]


def ended_message(session_id: str) -> dict:
    # The published clients read `reason` (the hybrid type file) and a `timestamp` in ms.
    return {**teardown.ended_message(session_id), "reason": "ended", "timestamp": int(time.time() * 1000)}


def audio_message(chunk) -> dict:
    # The front-end's AudioMessage, as the native dialect sends it (it reads what it knows of it).
    from .native import audio_message

    return audio_message(chunk)


def referenced_message(chunk) -> dict:
    # The listener service's translatedAudio (it plays the chunk it fetches from the URL; duration in seconds).
    from .native import referenced_message

    return referenced_message(chunk)
