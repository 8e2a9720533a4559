"""Every error the client raises; catch BroadcastClientError for all of them.

``str(error)`` is a sentence a person can read. Tokens and passwords never
appear in messages.
"""

from __future__ import annotations

from typing import Any

from .offline import PendingOperation


class BroadcastClientError(Exception):
    """Base of every error raised by this package."""


class ConfigurationError(BroadcastClientError):
    """The client is missing a URL, a stack file, credentials..."""


class BroadcastError(BroadcastClientError):
    """start_broadcast could not start the broadcast; the message says which step failed."""


class AuthenticationFailed(BroadcastClientError):
    """Cognito refused to sign the user in (wrong password, unknown user, challenge required)."""


# --------------------------------------------------------------------- network


class NetworkUnavailable(BroadcastClientError):
    """The service (or Cognito) could not be reached."""


class OperationQueued(NetworkUnavailable):
    """The service is unreachable, so the operation was queued; it runs on the
    next flush (explicit, or before the next call). ``await error.operation.wait()``
    gives its result once replayed."""

    def __init__(self, operation: PendingOperation[Any], pending: int) -> None:
        super().__init__(f"The session service is unreachable; '{operation.description}' is queued "
                         f"({pending} operation(s) waiting) and will be sent when it can be reached.")
        self.operation = operation


class QueueFull(NetworkUnavailable):
    """The service is unreachable and the offline queue is full; the operation was NOT queued."""


# ------------------------------------------------------------------- HTTP API


class SessionApiError(BroadcastClientError):
    """The session API answered with an error."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None,
                 retry_after: float | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        reference = f", request ID {self.request_id}" if self.request_id else ""
        return f"{self.message} (HTTP {self.status} {self.code}{reference})"


class ValidationFailed(SessionApiError):
    """400: the request was not valid (VALIDATION_ERROR, INVALID_SESSION_ID, ...)."""


class Unauthorized(SessionApiError):
    """401: the token is missing, expired or issued for another stack, even after a refresh."""


class Forbidden(SessionApiError):
    """403: only the session's speaker may do this."""


class NotFound(SessionApiError):
    """404: no such session, or it has expired."""


class Conflict(SessionApiError):
    """409: the session has ended, or changed since the version given in If-Match."""


class SessionEnded(Conflict):
    """409 SESSION_ENDED: an ended session can no longer change."""


class VersionConflict(Conflict):
    """409 VERSION_CONFLICT: read the session again and retry with its new version."""


class ServiceUnavailable(SessionApiError):
    """5xx: the service could not complete the request, even after retries."""


class RateLimited(ServiceUnavailable):
    """429: too many requests, even after retries (see ``retry_after``)."""


class SessionLimitReached(SessionApiError):
    """429 SESSION_LIMIT_REACHED: the user holds as many live sessions as the service allows. Not retried
    (unlike API Gateway's throttling 429): end a session first."""


_BY_CODE: dict[str, type[SessionApiError]] = {"SESSION_ENDED": SessionEnded, "VERSION_CONFLICT": VersionConflict,
                                              "SESSION_LIMIT_REACHED": SessionLimitReached}
_BY_STATUS: dict[int, type[SessionApiError]] = {
    400: ValidationFailed, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 429: RateLimited,
}
# API Gateway answers these with a bare {"message": ...}; say what they mean.
_GATEWAY_MESSAGES = {
    401: "The token was refused: it is missing, expired or issued for another stack.",
    429: "Too many requests; slow down and retry later.",
}


def api_error(status: int, body: Any, request_id: str | None = None,
              retry_after: float | None = None) -> SessionApiError:
    """The typed error for an error response: the service's {"error": {...}} body,
    API Gateway's {"message": ...} body, or anything else."""
    code, message = "", ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code, message = str(error.get("code") or ""), str(error.get("message") or "")
        request_id = str(error.get("requestId") or "") or request_id
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    code = code or {401: "UNAUTHORIZED", 429: "TOO_MANY_REQUESTS"}.get(status, f"HTTP_{status}")
    if status in _GATEWAY_MESSAGES and not isinstance(error, dict):
        message = _GATEWAY_MESSAGES[status]
    message = message or f"The session service answered HTTP {status}."
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status) or (ServiceUnavailable if status >= 500 else SessionApiError)
    return cls(status, code, message, request_id, retry_after)


# ------------------------------------------------------------------ WebSocket


class WebSocketError(BroadcastClientError):
    """The live connection failed and will not recover by itself."""


class PolicyViolation(WebSocketError):
    """The server refused the connection: a failed handshake (HTTP 401 or 403)
    or a close with code 1008. Retrying with the same parameters cannot help."""

    def __init__(self, message: str, *, status: int | None = None, close_code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.close_code = close_code


class SpeakerReplaced(WebSocketError):
    """Another connection of the same speaker took the session over; this one
    stops rather than fight it for the session."""


class ConnectionLost(WebSocketError):
    """The connection dropped and every reconnection attempt failed."""


class BufferFull(WebSocketError):
    """Too much audio is waiting for a connection; the chunk was NOT queued."""


class StreamClosed(WebSocketError):
    """The client was closed or the session ended; nothing more can be sent."""
