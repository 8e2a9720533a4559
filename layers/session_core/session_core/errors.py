"""Errors a caller may see. Each has an HTTP status and a machine-readable code;
the message is safe to show (no internal names, no exception text)."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    default_message = "The service could not complete the request."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


class ValidationError(ServiceError):
    status, code, default_message = 400, "VALIDATION_ERROR", "The request is not valid."


class InvalidJson(ServiceError):
    status, code, default_message = 400, "INVALID_JSON", "The request body is not valid JSON."


class BodyTooLarge(ServiceError):
    status, code, default_message = 400, "BODY_TOO_LARGE", "The request body is larger than 16 KB."


class InvalidSessionId(ServiceError):
    status, code = 400, "INVALID_SESSION_ID"
    default_message = "Session IDs look like 'golden-eagle-427': two lowercase words and three digits."


class Forbidden(ServiceError):
    status, code, default_message = 403, "FORBIDDEN", "Only the speaker who created the session may change it."


class NotSessionOwner(Forbidden):
    """A speaker connecting to someone else's session (a refused handshake: never sent)."""

    code = "NOT_SESSION_OWNER"


class SessionNotFound(ServiceError):
    status, code, default_message = 404, "SESSION_NOT_FOUND", "No session with this ID exists (or it has expired)."


class RouteNotFound(ServiceError):
    status, code, default_message = 404, "ROUTE_NOT_FOUND", "No such route."


class SessionEnded(ServiceError):
    status, code, default_message = 409, "SESSION_ENDED", "The session has ended and can no longer change."


class VersionConflict(ServiceError):
    status, code = 409, "VERSION_CONFLICT"
    default_message = "The session changed since the version given in If-Match; read it again and retry."


class IdempotencyKeyReused(ServiceError):
    status, code = 409, "IDEMPOTENCY_KEY_REUSED"
    default_message = "This Idempotency-Key was used with a different request body."


class RequestInProgress(ServiceError):
    status, code = 409, "REQUEST_IN_PROGRESS"
    default_message = "A request with this Idempotency-Key is still being processed; retry shortly."


class ServiceUnavailable(ServiceError):
    status, code, default_message = 503, "SERVICE_UNAVAILABLE", "The service is busy; retry with backoff."


class SessionIdExhausted(ServiceUnavailable):
    """No free session ID was found in the bounded number of tries."""


class Unauthorized(ServiceError):
    """Answered with API Gateway's bare body, so nothing about the token leaks."""

    status, code, default_message = 401, "UNAUTHORIZED", "Unauthorized"


# WebSocket-only refusals (sent as {"type": "error", "code": ...} messages).
class InvalidMessage(ServiceError):
    status, code, default_message = 400, "INVALID_MESSAGE", "Messages are JSON objects with an \"action\" field."


class UnknownAction(ServiceError):
    status, code = 400, "UNKNOWN_ACTION"
    default_message = "Unknown action; use sendAudio, heartbeat, pause, resume or createSession."


class InvalidSeq(ServiceError):
    status, code, default_message = 400, "INVALID_SEQ", "seq must be a non-negative integer."


class InvalidAudio(ServiceError):
    status, code, default_message = 400, "INVALID_AUDIO", "data must be base64-encoded audio."


class AudioTooLarge(ServiceError):
    status, code, default_message = 400, "AUDIO_TOO_LARGE", "The audio chunk is larger than the allowed size."


class SpeakerOnly(ServiceError):
    status, code, default_message = 403, "SPEAKER_ONLY", "Only the session's speaker may do this."


class SessionFull(ServiceError):
    status, code, default_message = 403, "SESSION_FULL", "The session has reached its listener limit."


class LegacyCreationDisabled(ServiceError):
    status, code = 403, "LEGACY_CREATION_DISABLED"
    default_message = "Creating sessions over the WebSocket is switched off; use POST /sessions."


class AlreadyInSession(ServiceError):
    status, code, default_message = 409, "ALREADY_IN_SESSION", "This connection already belongs to a session."


class NotThisSession(ServiceError):
    status, code = 403, "SESSION_MISMATCH"
    default_message = "sessionId must be the session of this connection."
