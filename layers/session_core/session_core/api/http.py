"""The HTTP side shared by every HTTP function: one router setup (router.py), the product's
token rules, body parsing, the caller's identity and the single error shape

    {"error": {"code": "SESSION_NOT_FOUND", "message": "...", "requestId": "..."}}
"""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Callable, TypeVar

from aws_lambda_powertools.logging import correlation_paths

from .. import errors
from ..domain import Session
from ..platform.auth import InvalidToken, cognito_token_claims, configured_verifier
from ..platform.observability import logger, metric, observed
from ..platform.settings import settings
from .router import JSON, HttpRouter, Response

if TYPE_CHECKING:
    from ..models import RequestBody

__all__ = ["Response", "caller_id", "expected_version", "http_app", "http_handler", "parse_body", "session_response"]

MAX_BODY_BYTES = 16 * 1024
Body = TypeVar("Body", bound="RequestBody")


def http_app() -> HttpRouter:
    return HttpRouter(before=cognito_token_rules, not_found=_not_found, on_error=_on_error)


def _not_found(app: HttpRouter) -> Response:
    return error_response(app, errors.RouteNotFound())


def _on_error(app: HttpRouter, error: Exception) -> Response:
    if isinstance(error, errors.ServiceError):
        if isinstance(error, errors.Unauthorized):
            # Why, for the log only (never the token): the caller gets API Gateway's bare 401.
            logger.info("token refused", extra={"route": app.current_event.route_key, "reason": error.message})
        elif error.status >= 500:
            logger.warning("request failed", extra={"route": app.current_event.route_key, "errorCode": error.code})
        return error_response(app, error)
    # The trace goes to the log; the caller gets no internals.
    logger.exception("unhandled error", extra={"route": app.current_event.route_key,
                                               "errorType": type(error).__name__})
    return error_response(app, errors.ServiceError())


def http_handler(app: HttpRouter) -> Callable[[dict, object], dict]:
    """The Lambda entry point: correlation ID = API Gateway request ID."""

    @observed(correlation_paths.API_GATEWAY_HTTP)
    def lambda_handler(event: dict, context: object) -> dict:
        started = time.perf_counter()
        response = app.resolve(event, context)
        # One summary line per request; never the body or headers (tokens, user data).
        logger.info("request", extra={"route": event.get("routeKey"), "status": response.get("statusCode"),
                                      "durationMs": round((time.perf_counter() - started) * 1000, 1)})
        return response

    return lambda_handler


def cognito_token_rules(app: HttpRouter) -> None:
    """Before every route: the product's token rules (platform/auth.py) on the token API Gateway let through.

    API Gateway's JWT authorizer verified the token of the Authorization header (its signature, iss,
    aud or client_id, exp, nbf, iat) and passes its claims; it lets through what Cognito never issues to
    the app client (another RSA algorithm, a refresh token, no sub...), which the product refuses here,
    with the same 401. No claims means no authorizer ran: `caller_id` decides.
    """
    claims = app.current_event.jwt_claims
    if claims:
        try:
            token = cognito_token_claims(app.current_event.headers.get("authorization"))
        except InvalidToken as refusal:
            raise errors.Unauthorized(str(refusal)) from None
        if token["sub"] != claims.get("sub"):
            raise errors.Unauthorized("the token is not the one API Gateway verified")


def error_response(app: HttpRouter, error: errors.ServiceError) -> Response:
    if isinstance(error, errors.Unauthorized):
        metric("AuthorizationFailure", api="http")
        return Response(401, JSON, json.dumps({"message": "Unauthorized"}))
    body = {"error": {"code": error.code, "message": error.message, "requestId": app.current_event.request_id}}
    return Response(error.status, JSON, json.dumps(body))


def session_response(session: Session, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, JSON, session.api_json(), headers=headers)


def caller_id(app: HttpRouter) -> str:
    """The token's `sub`, from the claims API Gateway's JWT authorizer verified.

    `sam local start-api` runs no JWT authorizer, so under the SAM CLI (and only
    there) the function verifies the bearer token itself, with the same code as
    the WebSocket authorizer. Anywhere else a request without claims is refused.
    """
    claims = app.current_event.jwt_claims
    if not claims and settings().sam_local:
        # The verifier loads PyJWT and cryptography (~150 ms of cold start) when first made: only here.
        try:
            claims = configured_verifier().verify(app.current_event.headers.get("authorization"))
        except InvalidToken as refusal:
            raise errors.Unauthorized(str(refusal)) from None
    sub = claims.get("sub")
    if not sub:
        raise errors.Unauthorized("no claims from API Gateway's JWT authorizer")
    return sub


def parse_body(app: HttpRouter, model: type[Body]) -> Body:
    from .validation import parse_json  # pydantic_core: only the functions that take a body load it

    event = app.current_event
    # Bytes as they came (a binary body is not decoded as UTF-8 here): pydantic_core reports bad UTF-8 as bad JSON.
    raw = base64.b64decode(event.body or "") if event.is_base64_encoded else (event.body or "")
    if len(raw.encode() if isinstance(raw, str) else raw) > MAX_BODY_BYTES:
        raise errors.BodyTooLarge()
    return parse_json(model, raw)


def expected_version(app: HttpRouter) -> int | None:
    """The optional If-Match header: the session version the caller last read."""
    value = app.current_event.headers.get("if-match")
    if value is None:
        return None
    value = value.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 12:
        raise errors.ValidationError("If-Match must be the session's version number, for example \"3\".")
    return int(value)
