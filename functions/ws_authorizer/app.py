"""WebSocket $connect authorizer: admits a speaker or listener by token, role and session ID.

Unauthorized (bad or missing token) makes API Gateway answer 401; a Deny
policy (bad role, session ID or language) answers 403. It does not read the
session: $connect's conditional write refuses a missing, ended, full or
foreign session, also with 403 (session_core.admission). Either way the
handshake fails; the reason is logged here ("connection refused", reason) and
counted (AuthorizationFailure, ConnectionRefused by reason). Every invocation
also logs one "request" summary line. An unexpected failure raises, which API
Gateway answers with 500 so that clients retry.
"""

from session_core import admission, errors
from session_core.domain import LISTENER, SPEAKER
from session_core.observability import logger, metric, observed


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
        who = admission.admit(query, headers.get("authorization"))
    except errors.Unauthorized as refusal:
        logger.info("connection refused", extra={"reason": "UNAUTHORIZED", "detail": refusal.message})
        logger.info("request", extra={**shape, "outcome": "unauthorized", "reason": "UNAUTHORIZED"})
        metric("AuthorizationFailure")
        unauthorized = Exception("Unauthorized")  # the exact text API Gateway maps to 401
        unauthorized.logged = True
        raise unauthorized from None
    except admission.Refused as refusal:
        logger.info("connection refused", extra={"reason": refusal.message})
        logger.info("request", extra={**shape, "outcome": "refused", "reason": refusal.message})
        metric("ConnectionRefused", reason=refusal.message)
        return _policy("Deny", event["methodArn"], "anonymous")
    logger.info("request", extra={**shape, "outcome": "allowed", "legacy": who.legacy})
    return _policy("Allow", event["methodArn"], who.userId or "anonymous", who.as_authorizer_context())


def _policy(effect: str, resource: str, principal: str, context: dict | None = None) -> dict:
    policy = {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17",
                           "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
    }
    if context is not None:
        policy["context"] = context
    return policy
