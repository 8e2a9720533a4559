"""Errors a caller may see. Each has an HTTP status and a machine-readable code;
the message is safe to show (no internal names, no exception text).

Every code's default message stands in MESSAGES, so they are reviewed together
(a raise may give a more precise one); an error class names its code, its base
its status, and a class whose code has no message fails at import.
"""

from __future__ import annotations

MESSAGES = {
    "INTERNAL_ERROR": "The service could not complete the request.",
    "VALIDATION_ERROR": "The request is not valid.",
    "INVALID_JSON": "The request body is not valid JSON.",
    "BODY_TOO_LARGE": "The request body is larger than 16 KB.",
    "INVALID_SESSION_ID": "Session IDs look like 'golden-eagle-427': two lowercase words and three digits.",
    "UNAUTHORIZED": "Unauthorized",
    "FORBIDDEN": "Only the speaker who created the session may change it.",
    "SESSION_NOT_FOUND": "No session with this ID exists (or it has expired).",
    "ROUTE_NOT_FOUND": "No such route.",
    "SESSION_ENDED": "The session has ended and can no longer change.",
    "VERSION_CONFLICT": "The session changed since the version given in If-Match; read it again and retry.",
    "IDEMPOTENCY_KEY_REUSED": "This Idempotency-Key was used with a different request body.",
    "REQUEST_IN_PROGRESS": "A request with this Idempotency-Key is still being processed; retry shortly.",
    "SERVICE_UNAVAILABLE": "The service is busy; retry with backoff.",
    "SESSION_LIMIT_REACHED": "You hold as many live sessions as one user may; end one to create another.",
    # WebSocket-only refusals.
    "INVALID_MESSAGE": "Messages are JSON objects with an \"action\" field.",
    "UNKNOWN_ACTION": "Unknown action; use sendAudio, heartbeat, pause, resume, mute, unmute or createSession.",
    "INVALID_SEQ": "seq must be a non-negative integer.",
    "INVALID_AUDIO": "data must be base64-encoded audio.",
    "AUDIO_TOO_LARGE": "The audio chunk is larger than the allowed size.",
    "SPEAKER_ONLY": "Only the session's speaker may do this.",
    "SESSION_FULL": "The session has reached its listener limit.",
    "LEGACY_CREATION_DISABLED": "Creating sessions over the WebSocket is switched off; use POST /sessions.",
    "ALREADY_IN_SESSION": "This connection already belongs to a session.",
    "SESSION_MISMATCH": "sessionId must be the session of this connection.",
    "LISTENER_ONLY": "Only a listener chooses a language.",
    "UNSUPPORTED_LANGUAGE": "targetLanguage must be one of the supported language codes (ISO 639-1, such as 'es').",
    "REFRESH_NEEDS_NEW_CONNECTION": "A connection cannot outlive its 2 hours: open a new connection with the same "
                                    "query, send refreshConnection on it, then close this one.",
    # Refused handshakes: logged and counted by code, never sent (API Gateway answers a bare 403, the same for
    # every refusal, so a guess learns nothing).
    "CONNECTION_REFUSED": "The connection was refused.",
    "NOT_SESSION_OWNER": "Only the session's owner may connect as its speaker.",
    "JOIN_KEY_MISSING": "An anonymous listener of a link session needs its join key.",
    "JOIN_KEY_WRONG": "The join key is not this session's.",
}


class ServiceError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    default_message = MESSAGES[code]

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs) -> None:
        # `class X(Base, code="...")`: the code's message (a KeyError here names a code MESSAGES lacks).
        super().__init_subclass__(**kwargs)
        if status:
            cls.status = status
        if code:
            cls.code = code
            cls.default_message = MESSAGES[code]

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.default_message)
        self.message = message or self.default_message


# The statuses, as bases of the errors below (never raised themselves).
class _BadRequest(ServiceError, status=400): ...
class _Refused(ServiceError, status=403): ...
class _NotFound(ServiceError, status=404): ...
class _Conflict(ServiceError, status=409): ...
class _TooMany(ServiceError, status=429): ...


class Unauthorized(ServiceError, status=401, code="UNAUTHORIZED"):
    """Answered with API Gateway's bare body, so nothing about the token leaks."""


class ServiceUnavailable(ServiceError, status=503, code="SERVICE_UNAVAILABLE"):
    """Any failure of AWS behind the request: never the caller's fault."""


class SessionIdExhausted(ServiceUnavailable):
    """No free session ID was found in the bounded number of tries."""


# The rest, by status; those from INVALID_MESSAGE on are WebSocket-only (sent as {"type": "error", ...}).
class ValidationError(_BadRequest, code="VALIDATION_ERROR"): ...
class InvalidJson(_BadRequest, code="INVALID_JSON"): ...
class BodyTooLarge(_BadRequest, code="BODY_TOO_LARGE"): ...
class InvalidSessionId(_BadRequest, code="INVALID_SESSION_ID"): ...
class InvalidMessage(_BadRequest, code="INVALID_MESSAGE"): ...
class UnknownAction(_BadRequest, code="UNKNOWN_ACTION"): ...
class InvalidSeq(_BadRequest, code="INVALID_SEQ"): ...
class InvalidAudio(_BadRequest, code="INVALID_AUDIO"): ...
class AudioTooLarge(_BadRequest, code="AUDIO_TOO_LARGE"): ...
class Forbidden(_Refused, code="FORBIDDEN"): ...
class NotSessionOwner(Forbidden, code="NOT_SESSION_OWNER"): ...  # a refused handshake: never sent
class SpeakerOnly(_Refused, code="SPEAKER_ONLY"): ...
class SessionFull(_Refused, code="SESSION_FULL"): ...
class LegacyCreationDisabled(_Refused, code="LEGACY_CREATION_DISABLED"): ...
class NotThisSession(_Refused, code="SESSION_MISMATCH"): ...
class SessionNotFound(_NotFound, code="SESSION_NOT_FOUND"): ...
class RouteNotFound(_NotFound, code="ROUTE_NOT_FOUND"): ...
class SessionEnded(_Conflict, code="SESSION_ENDED"): ...
class VersionConflict(_Conflict, code="VERSION_CONFLICT"): ...
class IdempotencyKeyReused(_Conflict, code="IDEMPOTENCY_KEY_REUSED"): ...
class RequestInProgress(_Conflict, code="REQUEST_IN_PROGRESS"): ...
class SessionLimitReached(_TooMany, code="SESSION_LIMIT_REACHED"):
    """Not retried by the clients (unlike API Gateway's throttling 429): only ending a session helps."""
# Refused handshakes of an anonymous listener to a link session: logged and counted, never sent (a 403 like
# every other refused handshake, so a guess learns nothing).
class JoinKeyMissing(_Refused, code="JOIN_KEY_MISSING"): ...
class JoinKeyWrong(_Refused, code="JOIN_KEY_WRONG"): ...
class AlreadyInSession(_Conflict, code="ALREADY_IN_SESSION"): ...
class ListenerOnly(_Refused, code="LISTENER_ONLY"): ...
class UnsupportedLanguage(_BadRequest, code="UNSUPPORTED_LANGUAGE"): ...
class RefreshNeedsNewConnection(_BadRequest, code="REFRESH_NEEDS_NEW_CONNECTION"): ...
