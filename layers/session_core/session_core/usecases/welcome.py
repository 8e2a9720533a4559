"""Messages a client waits for right after its handshake (the old protocol's sessionCreated,
sessionJoined and connectionRefreshComplete), and the session's state as the connection's dialect
tells it (docs/protocols.md, "Live states": a speaker learns the count, a listener whether the
session is live, paused, muted or without its speaker), which $connect itself cannot send.

API Gateway establishes a connection only once $connect has returned, and answers a post to it
before then with 410. So $connect hands the message to the welcome function, invoked
asynchronously (Lambda queues the event and $connect returns at once), which posts it as soon as
the connection is there, retrying the 410 for a bounded time (docs/architecture.md, "Messages at
connect time"). The state is read when it is posted, not when $connect ran: a change in between
is then told (its broadcast may have found the connection not yet open).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .. import errors
from ..domain import ENDED
from ..platform import lambdas, management
from ..platform.observability import logger, metric
from ..platform.settings import settings

if TYPE_CHECKING:
    from ..models import Session

# A handshake completes within milliseconds of $connect's return; the welcome gives up well before
# a client's own patience (the old clients wait without a limit, the hybrid ones 5 s) would matter.
DEADLINE_SECONDS = 5.0
FIRST_WAIT_SECONDS = 0.01
LONGEST_WAIT_SECONDS = 0.25


def schedule(connection_id: str, message: dict | None = None, state: dict | None = None) -> None:
    """Asks the welcome function to deliver `message`, then the session's state shaped for `state`
    ({sessionId, role, dialect}), once the connection is established."""
    event = {"connectionId": connection_id, **({"message": message} if message else {}),
             **({"state": state} if state else {})}
    lambdas.invoke_async(settings().required("welcome_function_name"), event)


def schedule_state(connection_id: str, state: dict) -> None:
    """schedule() of the state alone, for a connection whose handshake must not fail for it: a welcome that
    cannot be queued is logged and counted, and the client learns the state with its next change."""
    if not state.get("sessionId"):
        return  # a connection that creates its session later (createSession) has no state yet
    try:
        schedule(connection_id, state=state)
    except errors.ServiceError:
        metric("WelcomeUnscheduled")
        logger.warning("welcome not scheduled: the state is told with its next change")


def current_state(state: dict, shape: Callable[[dict, Session], list[dict]]) -> list[dict]:
    """The messages `shape` makes of the session's state now, for the connection `state` describes; none
    once the session is gone or ended (its sockets are told sessionEnded)."""
    from ..data import sessions as stored_sessions

    try:
        session = stored_sessions.get(state["sessionId"], int(time.time()), consistent=True)
    except errors.SessionNotFound:
        return []
    return [] if session.status == ENDED else shape(state, session)


def left(state: dict | None, connection_id: str) -> Callable[[], bool] | None:
    """Whether the client already left (its $disconnect removed its record): a 410 then means gone, not
    "not yet open". None when the connection has no session record to ask (nothing to tell them apart by)."""
    if not (state and state.get("sessionId")):
        return None
    from ..data import connections

    return lambda: connections.listed(state["sessionId"], connection_id) is None


# A handshake's 410s last as long as $connect takes to return: asking whether the client left costs a read,
# so only once the post has been refused this many times.
ATTEMPTS_BEFORE_ASKING = 3


def deliver(connection_id: str, message: dict | None = None, current: Callable[[], list[dict]] | None = None,
            deadline_seconds: float = DEADLINE_SECONDS, gone: Callable[[], bool] | None = None) -> bool:
    """Posts the message, then what `current` makes (called again before each attempt, so the newest state
    is posted), retrying while the connection is not (yet) established; False if it never was (the handshake
    failed after $connect, or the client left at once: `gone()` says so, and the retrying stops there
    instead of holding the function for the whole deadline). True at once when there is nothing to post."""
    started = time.monotonic()
    wait = FIRST_WAIT_SECONDS
    attempts = 0
    while True:
        messages = ([message] if message else []) + (current() if current else [])
        if not messages:
            return True
        attempts += 1
        if management.post(connection_id, messages[0]):
            for more in messages[1:]:
                management.post(connection_id, more)
            metric("WelcomeDelivered")
            logger.info("welcome delivered", extra={"types": [m.get("type") for m in messages], "attempts": attempts,
                                                    "waitedMs": round((time.monotonic() - started) * 1000)})
            return True
        if gone is not None and attempts >= ATTEMPTS_BEFORE_ASKING and gone():
            metric("WelcomeUndelivered")
            logger.info("welcome not delivered: the client left", extra={"attempts": attempts})
            return False
        if time.monotonic() - started + wait > deadline_seconds:
            metric("WelcomeUndelivered")
            logger.warning("welcome not delivered: the connection never opened", extra={"attempts": attempts})
            return False
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT_SECONDS)
