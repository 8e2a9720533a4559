"""Teardown workflow's last step: mark the teardown complete, record the durations."""

from session_core import teardown
from session_core.observability import observed


@observed("executionName")
def lambda_handler(event: dict, context) -> dict:
    return {"sessionDurationSeconds": teardown.finish(event["sessionId"], event["startedAt"])}
