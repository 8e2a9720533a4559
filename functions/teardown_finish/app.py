"""Teardown workflow's last step: mark the teardown complete, record the durations."""

from session_core.api.events import workflow_step
from session_core.usecases import teardown


def finish(event: dict) -> dict:
    return {"sessionDurationSeconds": teardown.finish(event["sessionId"], event["startedAt"])}


lambda_handler = workflow_step("finish", finish)
