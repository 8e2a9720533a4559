"""Teardown workflow step: tell a batch of sockets the session ended and close them."""

from session_core import teardown
from session_core.observability import observed


@observed("executionName")
def lambda_handler(event: dict, context) -> dict:
    return {"closed": teardown.disconnect_batch(event["sessionId"], event["connections"])}
