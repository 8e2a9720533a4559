"""Disconnecting and reconnecting: a disconnect keeps the session; a reconnecting speaker replaces its old
connection (told SPEAKER_REPLACED), and a reconnecting listener is counted once.
"""

from __future__ import annotations

import json

from tests.e2e.conftest import eventually
from tests.e2e.ws_helpers import (
    Sockets,
    ask,
    audio,
    closed,
    eventually_async,
    get_session,
    heartbeat,
    items,
    new_session,
    of_type,
    run,
    seqs,
    session_item,
)


def test_a_disconnect_keeps_the_session(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await speaker.close()
            await listener.close()

    run(scenario())
    eventually(lambda: items(stack, session_id, "CONN#") == [], what="connection records removed")
    # $disconnect deletes the record, then counts the listener off: a second write, a moment later.
    session = eventually(lambda: (s := get_session(http, stack, session_id))["listenerCount"] == 0 and s,
                         what="the listener counted off")
    assert (session["status"], session["listenerCount"]) == ("active", 0)
    assert "speakerConnectionId" not in session_item(stack, session_id)


def test_a_reconnecting_speaker_replaces_its_old_connection(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            first = await sockets.speaker(session_id)
            await first.send(json.dumps(audio(0)))
            await heartbeat(first)
            listener = await sockets.listener(session_id)
            second = await sockets.speaker(session_id)
            code, messages = await closed(first)
            replaced = [m for m in messages if m.get("type") == "error"]
            assert [m["code"] for m in replaced] == ["SPEAKER_REPLACED"] and code == 1001
            await second.send(json.dumps(audio(1)))
            await heartbeat(second)
            # The old connection's $disconnect left the new one in place.
            speakers = await eventually_async(
                lambda: (s := [i for i in items(stack, session_id, "CONN#") if i["role"]["S"] == "speaker"])
                and len(s) == 1 and s, what="one speaker record")
            assert session_item(stack, session_id)["speakerConnectionId"]["S"] == speakers[0]["connectionId"]["S"]
            await ask(second, {"action": "pause"}, of_type("status", status="paused"))
            # The listener reconnects too: counted once.
            await listener.close()
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await eventually_async(lambda: get_session(http, stack, session_id)["listenerCount"] == 1 and len(
                [i for i in items(stack, session_id, "CONN#") if i["role"]["S"] == "listener"]) == 1)

    run(scenario())
    assert seqs(stack, session_id) == [0, 1]
    assert get_session(http, stack, session_id)["status"] == "paused"
