"""WebSocket $connect authorizer: admits a speaker or listener to an existing session.

Unauthorized (bad or missing token) makes API Gateway answer 401; a Deny
policy (missing, ended, full or foreign session) answers 403. Either way the
handshake fails; the reason is logged here.
"""

from session_core import admission, errors
from session_core.observability import MetricUnit, logger, metrics, observed


@observed("requestContext.requestId")
def lambda_handler(event: dict, context) -> dict:
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    try:
        who = admission.admit(event.get("queryStringParameters") or {}, headers.get("authorization"))
    except errors.Unauthorized as refusal:
        logger.info("connection refused", extra={"reason": "UNAUTHORIZED", "detail": refusal.message})
        metrics.add_metric(name="AuthorizationFailure", unit=MetricUnit.Count, value=1)
        raise Exception("Unauthorized")  # the exact text API Gateway maps to 401
    except errors.ServiceError as refusal:
        logger.info("connection refused", extra={"reason": refusal.message})
        metrics.add_metric(name="ConnectionRefused", unit=MetricUnit.Count, value=1)
        return _policy("Deny", event["methodArn"], "anonymous")
    return _policy("Allow", event["methodArn"], who.userId or "anonymous", who.model_dump(mode="json"))


def _policy(effect: str, resource: str, principal: str, context: dict | None = None) -> dict:
    policy = {
        "principalId": principal,
        "policyDocument": {"Version": "2012-10-17",
                           "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
    }
    if context is not None:
        policy["context"] = context
    return policy
