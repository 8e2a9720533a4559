"""Messages a client waits for right after its handshake (the old protocol's sessionCreated,
sessionJoined and connectionRefreshComplete), which $connect itself cannot send.

API Gateway establishes a connection only once $connect has returned, and answers a post to it
before then with 410. So $connect hands the message to the welcome function, invoked
asynchronously (Lambda queues the event and $connect returns at once), which posts it as soon as
the connection is there, retrying the 410 for a bounded time (docs/architecture.md, "Messages at
connect time").
"""

from __future__ import annotations

import json
import time

from ..platform import management
from ..platform.aws import call
from ..platform.observability import logger, metric
from ..platform.settings import settings

# A handshake completes within milliseconds of $connect's return; the welcome gives up well before
# a client's own patience (the old clients wait without a limit, the hybrid ones 5 s) would matter.
DEADLINE_SECONDS = 5.0
FIRST_WAIT_SECONDS = 0.01
LONGEST_WAIT_SECONDS = 0.25


def schedule(connection_id: str, message: dict) -> None:
    """Asks the welcome function to deliver `message` once the connection is established."""
    call("lambda", "invoke", FunctionName=settings().required("welcome_function_name"), InvocationType="Event",
         Payload=json.dumps({"connectionId": connection_id, "message": message}).encode())


def deliver(connection_id: str, message: dict, deadline_seconds: float = DEADLINE_SECONDS) -> bool:
    """Posts the message, retrying while the connection is not (yet) established; False if it never was
    (the handshake failed after $connect, or the client left at once)."""
    started = time.monotonic()
    wait = FIRST_WAIT_SECONDS
    attempts = 0
    while True:
        attempts += 1
        if management.post(connection_id, message):
            metric("WelcomeDelivered")
            logger.info("welcome delivered", extra={"type": message.get("type"), "attempts": attempts,
                                                    "waitedMs": round((time.monotonic() - started) * 1000)})
            return True
        if time.monotonic() - started + wait > deadline_seconds:
            metric("WelcomeUndelivered")
            logger.warning("welcome not delivered: the connection never opened", extra={"attempts": attempts})
            return False
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT_SECONDS)
