"""Functions of this service handed work to run on their own (the welcome function, asynchronously): the only
module that speaks Lambda."""

from __future__ import annotations

import json

from .aws import call


def invoke_async(function_name: str, event: dict) -> None:
    """Queues `event` for the function (InvocationType Event: Lambda retries it; the caller does not wait)."""
    call("lambda", "invoke", FunctionName=function_name, InvocationType="Event", Payload=json.dumps(event).encode())
