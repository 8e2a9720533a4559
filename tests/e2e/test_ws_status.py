"""Status broadcasts: a status change, by HTTP or by the speaker, reaches every socket; the listener count is
true after concurrent joins and abrupt drops, and the last count the listeners are told is the true one.
"""

from __future__ import annotations

import asyncio

from tests.e2e.ws_helpers import (
    BROADCAST_WAIT,
    Sockets,
    ask,
    eventually_async,
    get_session,
    heartbeat,
    items,
    new_session,
    of_type,
    receive,
    run,
)


def test_status_changes_by_http_and_by_the_speaker_reach_every_socket(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listeners = [await sockets.listener(session_id), await sockets.listener(session_id, targetLanguage="es")]
            everyone = [speaker, *listeners]
            for ws in everyone:  # the joins are broadcast too
                await receive(ws, of_type("status", listenerCount=2), BROADCAST_WAIT)

            r = http.patch(f"/sessions/{session_id}", headers=stack.auth(), json={"status": "paused"})
            assert r.status_code == 200
            for ws in everyone:
                message = await receive(ws, of_type("status", status="paused"), BROADCAST_WAIT)
                assert message == {"type": "status", "sessionId": session_id, "status": "paused",
                                   "listenerCount": 2, "listenersByLanguage": {"en": 1, "es": 1},
                                   "speakerConnected": True}

            await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
            for ws in listeners:
                await receive(ws, of_type("status", status="active", listenerCount=2), BROADCAST_WAIT)

    run(scenario())


def test_listener_count_after_concurrent_joins_and_abrupt_drops(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listeners = await sockets.listeners(session_id, 30)
            assert get_session(http, stack, session_id)["listenerCount"] == 30
            for ws in listeners[:10]:
                ws.transport.abort()  # the TCP connection drops: no close frame
            await asyncio.gather(*(ws.close() for ws in listeners[10:15]))
            still_open = listeners[15:]
            count = await eventually_async(
                lambda: (c := get_session(http, stack, session_id)["listenerCount"]) == 15 and c,
                timeout=20, what="listenerCount back to 15")
            assert count == len(still_open) == 15
            assert len(await asyncio.to_thread(items, stack, session_id, "CONN#")) == 15
            for ws in still_open:
                await heartbeat(ws)  # the survivors are untouched
            # ...and the last count they are told is the true one.
            for ws in still_open:
                await receive(ws, of_type("status", listenerCount=15), BROADCAST_WAIT)

    run(scenario())
