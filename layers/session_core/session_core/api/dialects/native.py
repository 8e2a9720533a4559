"""This service's own WebSocket vocabulary (docs/api.md, "WebSocket API"): a connection that names its `role`.

  sendAudio {seq, data}         audio (speaker)                  -> nothing; errors as error messages
  pause, resume, mute, unmute   the speaker's controls           -> {"type": "status", ...}
  switchLanguage {targetLanguage}   a listener's language        -> {"type": "languageSwitched", ...}
  heartbeat                     (functions/ws_heartbeat)         -> {"type": "heartbeatAck", "serverTime"}

The old message names (renamed.py) are understood here too.
"""

from __future__ import annotations

from ...usecases import audio, membership, welcome
from ...usecases.teardown import ended_message  # noqa: F401 - this dialect's farewell
from ..ws import WsRequest, require_speaker, status_reply
from ..ws import status_message as native_status
from . import renamed, welcome_state


def connect(request: WsRequest) -> None:
    membership.join(request.connection_id, request.connection, join_key=request.query.get("joinKey"))
    # The status at once, speaker and listener alike: only changes are broadcast.
    welcome.schedule_state(request.connection_id, welcome_state(request))


def send_audio(request: WsRequest) -> None:
    require_speaker(request)
    chunk = audio.parse_chunk(request.message())  # validated, and within the size limit
    audio.receive(membership.session_of(request.connection_id, request.connection), chunk)


def _control(command: str):
    def control(request: WsRequest) -> dict:
        require_speaker(request)
        session_id = membership.session_of(request.connection_id, request.connection)
        return status_reply(audio.control(session_id, request.connection.userId, command))
    return control


def switch_language(request: WsRequest) -> dict:
    fields = request.message()
    session_id = membership.session_of(request.connection_id, request.connection)
    language = membership.switch_language(request.connection_id, request.connection, fields.get("targetLanguage"))
    return {"type": "languageSwitched", "sessionId": session_id, "targetLanguage": language}


ROUTES = {"sendAudio": send_audio, "switchLanguage": switch_language, **{command: _control(command) for command in audio.CONTROLS}, **renamed.ROUTES}


def status_message(role: str, change) -> dict | None:
    # Every connection, speaker or listener, is told every change of status, counts, mute or speaker presence.
    del role  # the same message for both
    return native_status(change.sessionId, change.status, change.listenerCount, change.muted,
                         languages=change.languages, speaker_connected=change.speakerConnected,
                         speaker_disconnected_at=change.speakerDisconnectedAt)


def welcome_messages(role: str, session) -> list[dict]:
    del role  # the same message for both
    return [status_reply(session)]


def audio_message(chunk) -> dict:
    """The published listener message (the hybrid front-end's AudioMessage), with the session and language."""
    message = {"type": "audio", "sessionId": chunk.sessionId, "language": chunk.language,
               "sequenceNumber": chunk.sequenceNumber, "audioData": chunk.audioData, "format": "pcm",
               "sampleRate": chunk.sampleRate, "channels": chunk.channels, "timestamp": chunk.timestamp}
    if chunk.transcript is not None:
        message["transcript"] = chunk.transcript
    if chunk.chunks > 1:  # several consecutive chunks in one message (the fan-out catching up)
        message["chunks"] = chunk.chunks
    return message


def referenced_message(chunk) -> dict:
    """A stored chunk of about 2 s by URL: the hybrid listener client's translatedAudio, with the session."""
    message = {"type": "translatedAudio", "sessionId": chunk.sessionId, "targetLanguage": chunk.language,
               "url": chunk.url, "sequenceNumber": chunk.sequenceNumber, "timestamp": chunk.timestamp,
               "duration": chunk.duration}
    if chunk.transcript is not None:
        message["transcript"] = chunk.transcript
    return message
