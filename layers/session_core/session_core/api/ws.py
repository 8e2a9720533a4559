"""The WebSocket side shared by every WebSocket function: the parsed event,
replies through the route response, and the error message shape

    {"type": "error", "code": "SESSION_ENDED", "message": "...", "requestId": "..."}
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

from aws_lambda_powertools.logging import correlation_paths

from .. import errors
from ..domain import SPEAKER, ConnectionContext
from ..platform.observability import logger, metric, observed


@dataclass(frozen=True)
class WsRequest:
    connection_id: str
    request_id: str
    route_key: str
    connection: ConnectionContext
    body: str | None
    query: dict[str, str]
    connected_at_ms: int = 0  # when API Gateway accepted the connection

    @classmethod
    def from_event(cls, event: dict) -> "WsRequest":
        context = event.get("requestContext") or {}
        try:
            connection = ConnectionContext.from_authorizer(context.get("authorizer") or {})
        except ValueError:
            # Every route is behind the authorizer; a missing context is a wiring fault.
            raise errors.ServiceError() from None
        return cls(
            connection_id=context.get("connectionId", ""),
            request_id=context.get("requestId", ""),
            route_key=context.get("routeKey", ""),
            connection=connection,
            body=event.get("body"),
            query=event.get("queryStringParameters") or {},
            connected_at_ms=int(context.get("connectedAt") or 0),
        )

    def message(self) -> dict:
        """The frame as a JSON object (route selection already read its "action")."""
        try:
            value = json.loads(self.body or "")
        except ValueError:
            raise errors.InvalidMessage() from None
        if not isinstance(value, dict):
            raise errors.InvalidMessage()
        return value


def reply(message: dict) -> dict:
    # Routes have a $default route response, so this body goes back to the caller.
    return {"statusCode": 200, "body": json.dumps(message)}


def error_message(error: errors.ServiceError, request_id: str, **extra) -> dict:
    return {"type": "error", "code": error.code, "message": error.message, "requestId": request_id, **extra}


def ws_handler(route: Callable[[WsRequest], dict | None], *, refuse_on_error: bool = False,
               refusal_metric: str | None = None, quiet_when_ok: bool = False):
    """The Lambda entry point of a WebSocket route.

    Message routes answer errors as error messages and keep the connection;
    $connect (refuse_on_error) answers the error's status, which fails the
    handshake as API Gateway does. With `refusal_metric`, every error answer
    also counts that metric with the error code as its `reason` dimension.
    `quiet_when_ok`: a route as frequent as audio frames writes its summary of
    a success at DEBUG (errors and refusals stay INFO), so a frame costs no log line.

    Correlation: the log's correlation ID is API Gateway's request ID, and
    every line carries the connection ID (`connectionId`).
    """

    @observed(correlation_paths.API_GATEWAY_REST)
    def lambda_handler(event: dict, context: object) -> dict:
        started = time.perf_counter()
        request_context = event.get("requestContext") or {}
        request_id = request_context.get("requestId", "")
        route_key = request_context.get("routeKey")
        logger.append_keys(connectionId=request_context.get("connectionId"))

        def summary(outcome: str) -> None:
            # One summary line per message; never the frame itself (audio, tokens).
            write = logger.debug if quiet_when_ok and outcome == "ok" else logger.info
            write("request", extra={"route": route_key, "outcome": outcome,
                                    "durationMs": round((time.perf_counter() - started) * 1000, 1)})

        def answer_error(error: errors.ServiceError) -> dict:
            if refusal_metric:
                metric(refusal_metric, reason=error.code)
            if refuse_on_error and 400 <= error.status < 500:
                logger.info("connection refused", extra={"reason": error.code})
                # API Gateway counts the refusal as an IntegrationError; the WebSocket error-rate alarm
                # subtracts these (one metric, no reason: an alarm cannot SEARCH).
                metric("HandshakeRefused")
            summary(error.code)
            if refuse_on_error:
                # A refused handshake is 403 whatever the reason (as documented); service faults keep theirs.
                return {"statusCode": 403 if 400 <= error.status < 500 else error.status}
            return reply(error_message(error, request_id))

        try:
            request = WsRequest.from_event(event)
            answer = route(request)
        except errors.ServiceError as error:
            if error.status >= 500:
                logger.warning("request failed", extra={"route": route_key, "errorCode": error.code})
            return answer_error(error)
        except Exception as error:
            logger.exception("unhandled error", extra={"route": route_key, "errorType": type(error).__name__})
            return answer_error(errors.ServiceError())
        summary("ok")
        return reply(answer) if answer is not None else {"statusCode": 200}

    return lambda_handler


def require_speaker(request: WsRequest) -> None:
    if request.connection.role != SPEAKER:
        raise errors.SpeakerOnly()


def status_reply(session) -> dict:
    """The status message of this service's own vocabulary (also what the table stream broadcasts)."""
    return status_message(session.sessionId, session.status, session.listenerCount, session.muted,
                          languages=session.language_distribution(),
                          speaker_connected=session.speakerConnectionId is not None,
                          speaker_disconnected_at=session.speakerDisconnectedAt)


def status_message(session_id: str, status: str, listener_count: int, muted: bool, *, languages: dict[str, int],
                   speaker_connected: bool, speaker_disconnected_at: int | None = None) -> dict:
    """docs/protocols.md, "Live states"."""
    message = {"type": "status", "sessionId": session_id, "status": status, "listenerCount": listener_count,
               "listenersByLanguage": languages, "speakerConnected": speaker_connected}
    if muted:
        message["muted"] = True  # only while muted: the message is unchanged for clients that never mute
    if not speaker_connected and speaker_disconnected_at is not None:
        message["speakerDisconnectedAt"] = speaker_disconnected_at  # a speaker who left, not one yet to come
    return message
