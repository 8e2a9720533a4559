"""Teardown workflow's last step: mark the teardown complete, record the durations."""

from session_core import teardown
from session_core.observability import logger, observed


@observed("executionName")
def lambda_handler(event: dict, context) -> dict:
    # Correlation ID: the workflow's execution name (<sessionId>-<createdAt>).
    logger.append_keys(sessionId=event.get("sessionId"))
    duration = teardown.finish(event["sessionId"], event["startedAt"])
    logger.info("request", extra={"step": "finish", "sessionDurationSeconds": duration})
    return {"sessionDurationSeconds": duration}
