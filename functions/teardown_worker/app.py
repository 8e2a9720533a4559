"""Teardown workflow step: tell a batch of sockets the session ended and close them."""

from session_core import teardown
from session_core.observability import logger, observed


@observed("executionName")
def lambda_handler(event: dict, context) -> dict:
    # Correlation ID: the workflow's execution name (<sessionId>-<createdAt>).
    logger.append_keys(sessionId=event.get("sessionId"))
    closed = teardown.disconnect_batch(event["sessionId"], event["connections"])
    logger.info("request", extra={"step": "disconnectBatch", "closed": closed})
    return {"closed": closed}
