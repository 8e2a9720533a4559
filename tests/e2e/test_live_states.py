"""Live states that tell the truth (docs/protocols.md "Live states"): a listener sees waiting for the speaker,
live, paused, muted, speaker disconnected and ended, each within a second of the event that made it, whether it
was connected when it happened or joined afterwards; a speaker who connects learns the count at once.

Real sockets to the local stack: a change reaches the sockets through the table's stream and the status
broadcast; what a connection is told when it opens comes from the welcome function, invoked by $connect.
Each test measures its delay (event -> the listener told) and prints it; `pytest -s` shows them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.e2e.ws_helpers import Sockets, ask, heartbeat, new_session, of_type, receive, run

TOLD_WITHIN = 1.0  # seconds, locally (issue: "each within a second")
WAIT = 10.0  # how long a test waits at most, so that a late message fails with its delay, not a timeout


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module", autouse=True)
def warm(stack, http):
    """Every function on the paths measured here has run once before: the first run of each on a fresh stack
    starts its worker (seconds on a busy machine: a cold start on AWS, measured by the bench), which is not
    the path these tests time."""
    session_id = new_session(http, stack)["sessionId"]

    async def once():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await receive(listener, of_type("status"), WAIT)  # the welcome or the broadcast
            await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            await receive(listener, of_type("status", status="paused"), WAIT)
            r = await asyncio.to_thread(http.delete, f"/sessions/{session_id}", headers=stack.auth())
            assert r.status_code == 204
            await receive(listener, of_type("sessionEnded"), WAIT)

    run(once())


def waiting(m: dict) -> bool:
    return m.get("type") == "status" and m.get("speakerConnected") is False and "speakerDisconnectedAt" not in m


def live(m: dict) -> bool:
    return (m.get("type") == "status" and m.get("status") == "active" and m.get("speakerConnected") is True
            and "muted" not in m)


def paused(m: dict) -> bool:
    return m.get("type") == "status" and m.get("status") == "paused"


def muted(m: dict) -> bool:
    return m.get("type") == "status" and m.get("muted") is True


def speaker_gone(m: dict) -> bool:
    return m.get("type") == "status" and m.get("speakerConnected") is False and m.get("speakerDisconnectedAt", 0) > 0


async def told(ws: ClientConnection, match: Callable[[dict], bool], since: float, what: str) -> float:
    """The delay from `since` until `ws` is told what `match` accepts, among the messages received from now on
    (not one told before the event); fails if it is over TOLD_WITHIN."""
    await receive(ws, match, WAIT, only_new=True)
    delay = time.monotonic() - since
    print(f"{what}: {delay * 1000:.0f} ms")
    assert delay <= TOLD_WITHIN, f"{what} took {delay:.2f} s"
    return delay


def test_a_listener_before_the_speaker_is_told_waiting_for_the_speaker(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            started = time.monotonic()
            listener = await sockets.listener(session_id)
            await told(listener, waiting, started, "connect -> waiting for the speaker")

    run(scenario())


def test_a_listener_is_told_live_when_the_speaker_connects(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id)
            await receive(listener, waiting, WAIT)
            started = time.monotonic()
            await sockets.speaker(session_id)
            await told(listener, live, started, "speaker connects -> live")

    run(scenario())


def test_a_listener_is_told_paused_and_live_again(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await receive(listener, live, WAIT)
            started = time.monotonic()
            await heartbeat(speaker)  # the baseline the delays are read against: one round trip through a function
            print(f"baseline, heartbeat round trip: {(time.monotonic() - started) * 1000:.0f} ms")
            started = time.monotonic()
            await speaker.send('{"action": "pause"}')
            await told(listener, paused, started, "pause -> paused")
            started = time.monotonic()
            await speaker.send('{"action": "resume"}')
            await told(listener, live, started, "resume -> live")

    run(scenario())


def test_a_listener_is_told_muted(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await receive(listener, live, WAIT)
            started = time.monotonic()
            await speaker.send('{"action": "mute"}')
            await told(listener, muted, started, "mute -> muted")

    run(scenario())


def test_a_listener_is_told_when_the_speaker_disconnects_and_returns(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await receive(listener, live, WAIT)
            started = time.monotonic()
            await speaker.close()
            await told(listener, speaker_gone, started, "speaker disconnects -> speaker disconnected")
            started = time.monotonic()
            await sockets.speaker(session_id)
            await told(listener, live, started, "speaker returns -> live")

    run(scenario())


def test_a_listener_is_told_the_session_ended(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await receive(listener, live, WAIT)
            started = time.monotonic()
            r = await asyncio.to_thread(http.delete, f"/sessions/{session_id}", headers=stack.auth())
            assert r.status_code == 204
            await told(listener, of_type("sessionEnded"), started, "end -> ended")

    run(scenario())


@pytest.mark.parametrize(("state", "action", "expected"), [
    ("paused", "pause", paused), ("muted", "mute", muted), ("speaker disconnected", None, speaker_gone)])
def test_a_listener_who_joins_later_is_told_the_state_at_once(stack, http, state, action, expected):
    # Only changes are broadcast: a listener who joins after one is told the state when its connection opens.
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            observer = await sockets.listener(session_id)
            if action:
                await speaker.send(f'{{"action": "{action}"}}')
            else:
                await speaker.close()
            await receive(observer, expected, WAIT)  # the change's broadcast is done
            started = time.monotonic()
            listener = await sockets.listener(session_id)
            await told(listener, expected, started, f"join -> {state}")

    run(scenario())


def test_a_speaker_who_connects_learns_the_count_at_once(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            first = await sockets.listener(session_id)
            await sockets.listener(session_id, targetLanguage="es")
            await receive(first, of_type("status", listenerCount=2), WAIT)  # the joins' broadcasts are done
            started = time.monotonic()
            speaker = await sockets.speaker(session_id)
            message = await receive(speaker, of_type("status", listenerCount=2), WAIT)
            delay = time.monotonic() - started
            print(f"speaker connects -> count: {delay * 1000:.0f} ms")
            assert delay <= TOLD_WITHIN
            assert message["listenersByLanguage"] == {"en": 1, "es": 1} and message["speakerConnected"] is True

    run(scenario())


def test_the_published_clients_are_told_the_state_at_connect_in_their_own_messages(stack, http):
    session_id = new_session(http, stack, access="public")["sessionId"]  # the old listeners join by the ID

    async def scenario():
        async with Sockets(stack) as sockets:
            hybrid_speaker = await sockets.open(token=stack.token("alice"), sessionId=session_id)
            status = await receive(hybrid_speaker, of_type("sessionStatus"), WAIT)  # unasked
            assert (status["listenerCount"], status["speakerConnected"]) == (0, True)
            await ask(hybrid_speaker, {"action": "pauseBroadcast"}, of_type("speakerPaused"))
            await receive(hybrid_speaker, of_type("sessionStatus", status="paused"), WAIT)  # the pause's broadcast
            hybrid_listener = await sockets.open(sessionId=session_id, targetLanguage="es")
            await receive(hybrid_listener, of_type("broadcastPaused", sessionId=session_id), WAIT)
            old_listener = await sockets.open(action="joinSession", sessionId=session_id, targetLanguage="es")
            joined = await receive(old_listener, of_type("sessionJoined"), WAIT)
            assert joined["speakerConnected"] is True
            await receive(old_listener, of_type("sessionPaused", sessionId=session_id), WAIT)

    run(scenario())
