"""The WebSocket $connect authorizer's answers to API Gateway.

Unauthorized (bad or missing token) makes API Gateway answer 401; a Deny
policy (a refusal: bad role, session ID or language) answers 403. Either way
the handshake fails; the reason is logged ("connection refused", reason) and
counted (AuthorizationFailure, ConnectionRefused by reason). Every invocation
also logs one "request" summary line. The service's own failure (the JWKS out of
reach: SERVICE_UNAVAILABLE) and an unexpected one raise, which API Gateway
answers with 500 so that clients retry.
"""

from __future__ import annotations

from collections.abc import Callable

from .. import errors
from ..domain import LISTENER, SPEAKER, ConnectionContext
from ..platform.observability import logger, metric, observed
from ..usecases.admission import Refused


def authorizer_handler(admit: Callable[[dict[str, str], str | None], ConnectionContext]):
    """The Lambda entry point: `admit(query, authorization header)` decides, raising Unauthorized or Refused."""

    @observed("requestContext.requestId", traced=False)  # no AWS call to trace: no X-Ray SDK
    def lambda_handler(event: dict, context) -> dict:
        request_context = event.get("requestContext") or {}
        logger.append_keys(connectionId=request_context.get("connectionId"))
        headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
        query = event.get("queryStringParameters") or {}
        # The token (query or header) is never logged: only the request's shape.
        role = query.get("role")
        shape = {"route": request_context.get("routeKey", "$connect"),
                 "role": role if role in (SPEAKER, LISTENER) else "other",
                 "withToken": bool(query.get("token") or headers.get("authorization"))}
        try:
            who = admit(query, headers.get("authorization"))
        except errors.Unauthorized as refusal:
            logger.info("connection refused", extra={"reason": "UNAUTHORIZED", "detail": refusal.message})
            logger.info("request", extra={**shape, "outcome": "unauthorized", "reason": "UNAUTHORIZED"})
            metric("AuthorizationFailure", api="websocket")  # its error-rate alarm subtracts exactly these
            unauthorized = Exception("Unauthorized")  # the exact text API Gateway maps to 401
            unauthorized.logged = True
            raise unauthorized from None
        except errors.ServiceUnavailable as failure:
            # Not the caller's fault (the pool's keys out of reach): any exception but "Unauthorized" makes
            # API Gateway answer 500, which clients retry. A Lambda error, not AuthorizationFailure, so the
            # authorizer's error-rate alarm sees it.
            logger.info("request", extra={**shape, "outcome": "failed", "reason": failure.code})
            unavailable = Exception(failure.code)
            unavailable.logged = True
            raise unavailable from None
        except Refused as refusal:
            logger.info("connection refused", extra={"reason": refusal.reason})
            logger.info("request", extra={**shape, "outcome": "refused", "reason": refusal.reason})
            metric("ConnectionRefused", reason=refusal.reason)
            return _policy("Deny", event["methodArn"], "anonymous")
        logger.info("request", extra={**shape, "outcome": "allowed", "legacy": who.legacy, "dialect": who.dialect})
        return _policy("Allow", event["methodArn"], who.userId or "anonymous", who.as_authorizer_context())

    return lambda_handler


def _policy(effect: str, resource: str, principal: str, context: dict | None = None) -> dict:
    policy = {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17",
                           "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
    }
    if context is not None:
        policy["context"] = context
    return policy
