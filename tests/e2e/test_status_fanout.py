"""A crowd joining does not hold back a pause: with the local stack's AWS-like @connections latency on
(local_stack/README.md, "How close to AWS"), listeners joining in a burst while the speaker pauses are all told the pause
within 2 s (docs/architecture.md "Status broadcast")."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.e2e.ws_helpers import Sockets, ask, of_type, receive, run

pytestmark = pytest.mark.local_only("switches the local stack's @connections latency")

# Twice local_stack/README.md's 30 ms: this machine opens a crowd at about 30 joins a second, not AWS's 500, and a
# crowd that slow fills the broadcast queue only if each post takes longer (a slow region, a busy gateway).
LATENCY_MS = 60
BEFORE_PAUSE = 200  # listeners joined when the speaker pauses
DURING_PAUSE = 100  # listeners still joining while the pause is told
JOINING_AT_ONCE = 20
TOLD_WITHIN = 2.0


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


@pytest.fixture
def aws_like_posts(stack):
    def latency(ms: int) -> None:
        r = httpx.post(f"{stack['managementApiUrl']}/@faults/$latency", params={"latencyMs": ms})
        assert r.status_code == 204, r.text

    latency(LATENCY_MS)
    yield
    latency(0)


async def note_pause(ws, told: dict, key: int) -> None:
    """Reads a listener's messages until the pause; notes when it came."""
    try:
        async for frame in ws:
            message = json.loads(frame)
            if message.get("type") == "status" and message.get("status") == "paused":
                told[key] = time.monotonic()
                return
    except ConnectionClosed:
        return


def test_a_pause_reaches_every_listener_within_2_s_while_a_crowd_joins(stack, http, aws_like_posts):
    r = http.post("/sessions", headers=stack.auth(), json={"sourceLanguage": "en", "access": "public"})  # a crowd by the ID
    assert r.status_code == 201, r.text
    session_id = r.json()["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listeners = await sockets.listeners(session_id, BEFORE_PAUSE, batch=JOINING_AT_ONCE)
            told: dict[int, float] = {}
            readers = [asyncio.create_task(note_pause(ws, told, i)) for i, ws in enumerate(listeners)]
            # The crowd goes on joining while the pause is said and told.
            crowd = asyncio.create_task(sockets.listeners(session_id, DURING_PAUSE, batch=JOINING_AT_ONCE))
            paused_at = time.monotonic()
            await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            await asyncio.wait(readers, timeout=TOLD_WITHIN + 10)  # bounded; the assertion says how late
            late = sorted(round(told.get(i, float("inf")) - paused_at, 2) for i in range(len(listeners)))
            assert late[-1] <= TOLD_WITHIN, f"pause -> listeners told (s): p50 {late[len(late) // 2]}, last {late[-1]}"
            await crowd
            # The speaker's count stays exact: it is told the whole crowd.
            await receive(speaker, of_type("status", listenerCount=BEFORE_PAUSE + DURING_PAUSE), timeout=15)

    run(scenario(), timeout=240)
