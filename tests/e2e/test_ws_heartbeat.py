"""The heartbeat: every socket, speaker or listener, gets a heartbeatAck with the server's time."""

from __future__ import annotations

import time

from tests.e2e.ws_helpers import Sockets, heartbeat, new_session, run


def test_heartbeat_is_acknowledged_with_the_server_time(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            for ws in (await sockets.speaker(session_id), await sockets.listener(session_id)):
                before = int(time.time() * 1000)
                ack = await heartbeat(ws)
                after = int(time.time() * 1000)
                assert set(ack) == {"type", "serverTime"}
                assert before - 1000 <= ack["serverTime"] <= after + 1000

    run(scenario())
