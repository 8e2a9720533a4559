"""Teardown workflow step: tell a batch of sockets the session ended and close them."""

from session_core.api import dialects
from session_core.api.events import workflow_step
from session_core.usecases import teardown


def disconnect_batch(event: dict) -> dict:
    return {"closed": teardown.disconnect_batch(event["sessionId"], event["connections"], dialects.farewell)}


lambda_handler = workflow_step("disconnectBatch", disconnect_batch)
