"""The speaker's controls and what they do to the audio: mute drops it (and a listener switches language);
pause holds it and a resume forwards it first, dropping what is older than 30 s; listeners may not send audio,
pause or resume; after the session ended, audio and controls answer SESSION_ENDED.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import LocalStackHandle
from tests.e2e.ws_helpers import (
    BROADCAST_WAIT,
    Sockets,
    ask,
    audio,
    closed,
    error_for,
    eventually_async,
    get_session,
    heartbeat,
    items,
    new_session,
    of_type,
    receive,
    run,
    seqs,
    session_item,
)


def test_a_muted_session_drops_audio_and_says_so_and_a_listener_switches_language(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await sockets.listener(session_id, targetLanguage="es")
            muted = await ask(speaker, {"action": "mute"}, of_type("status", muted=True))
            assert muted == {"type": "status", "sessionId": session_id, "status": "active", "listenerCount": 1,
                             "listenersByLanguage": {"es": 1}, "speakerConnected": True, "muted": True}
            await receive(listener, of_type("status", muted=True), timeout=BROADCAST_WAIT)
            await speaker.send(json.dumps(audio(0)))
            # The answer, or the broadcast of the same change: without "muted", as for clients that never mute.
            await ask(speaker, {"action": "unmute"}, lambda m: m.get("type") == "status" and "muted" not in m)
            switched = await ask(listener, {"action": "switchLanguage", "targetLanguage": "fr"},
                                 of_type("languageSwitched"))
            assert switched == {"type": "languageSwitched", "sessionId": session_id, "targetLanguage": "fr"}
            assert (await error_for(listener, {"action": "switchLanguage", "targetLanguage": "xx"})) == \
                "UNSUPPORTED_LANGUAGE"
            assert (await error_for(speaker, {"action": "switchLanguage", "targetLanguage": "fr"})) == "LISTENER_ONLY"
            await speaker.send(json.dumps(audio(1)))
            await heartbeat(speaker)
            found = await eventually_async(lambda: stack.audio_records(session_id), what="the unmuted chunk")
            assert [(r["seq"], r["listenerLanguages"]) for r in found] == [(1, ["fr"])]  # chunk 0 was dropped

    run(scenario())


@pytest.mark.parametrize("resume_by", ["websocket", "http"])
def test_paused_audio_is_held_then_forwarded_before_new_audio(stack, http, resume_by):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for seq in range(3):
                await speaker.send(json.dumps(audio(seq)))
            paused = await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            assert paused == {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 0,
                              "listenersByLanguage": {}, "speakerConnected": True}
            for seq in range(3, 7):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2]  # held, not forwarded
            held = await asyncio.to_thread(items, stack, session_id, "AUDIO#")
            assert [int(i["seq"]["N"]) for i in held] == [3, 4, 5, 6]
            assert get_session(http, stack, session_id)["status"] == "paused"

            if resume_by == "websocket":
                await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
                await heartbeat(speaker)  # the resume's reply may be overtaken by its broadcast
                # A WebSocket resume forwards the buffer at once.
                assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2, 3, 4, 5, 6]
            else:
                r = http.patch(f"/sessions/{session_id}", headers=stack.auth(), json={"status": "active"})
                assert r.status_code == 200 and r.json()["status"] == "active"
                # After an HTTP resume the speaker's next chunk forwards the buffer first.
            for seq in range(7, 9):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)

    run(scenario())
    assert seqs(stack, session_id) == list(range(9))
    assert items(stack, session_id, "AUDIO#") == []
    assert int(session_item(stack, session_id).get("bufferedChunks", {"N": "0"})["N"]) == 0


@pytest.mark.local_only("reads the function's log file")
def test_paused_audio_older_than_30_seconds_is_dropped_on_resume(stack, http):
    session_id = new_session(http, stack)["sessionId"]
    ddb = stack.aws("dynamodb")

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)))
            await ask(speaker, {"action": "pause"}, of_type("status", status="paused"))
            for seq in range(1, 7):
                await speaker.send(json.dumps(audio(seq)))
            await heartbeat(speaker)
            held = await asyncio.to_thread(items, stack, session_id, "AUDIO#")
            assert [int(i["seq"]["N"]) for i in held] == [1, 2, 3, 4, 5, 6]
            # Age the first three as if they had arrived 40 s ago (no 30 s sleep).
            forty_seconds_ago = int(time.time() * 1000) - 40_000
            for item in held[:3]:
                ddb.update_item(TableName=stack["tableName"], Key={"pk": item["pk"], "sk": item["sk"]},
                                UpdateExpression="SET receivedAtMs = :t",
                                ExpressionAttributeValues={":t": {"N": str(forty_seconds_ago)}})
            await ask(speaker, {"action": "resume"}, of_type("status", status="active"))
            await heartbeat(speaker)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 4, 5, 6]
            await speaker.send(json.dumps(audio(7)))
            await heartbeat(speaker)

    flushed_before = len([line for line in stack.log_lines("WsSessionControlFunction")
                          if line.get("message") == "paused audio flushed"])
    run(scenario())
    assert seqs(stack, session_id) == [0, 4, 5, 6, 7]
    assert items(stack, session_id, "AUDIO#") == []  # the dropped ones are deleted too
    flushes = [line for line in stack.log_lines("WsSessionControlFunction")
               if line.get("message") == "paused audio flushed"][flushed_before:]
    assert [(f["forwarded"], f["dropped"]) for f in flushes] == [(3, 3)]
    assert any("AudioDroppedWhilePaused" in line for line in stack.log_lines("WsSessionControlFunction")
               if "_aws" in line)


def test_listeners_may_not_send_audio_pause_or_resume(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            for listener in (await sockets.listener(session_id),
                             await sockets.listener(session_id, token=stack.token("alice"))):  # even the owner
                assert await error_for(listener, audio(0)) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "pause"}) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "resume"}) == "SPEAKER_ONLY"
                assert await error_for(listener, {"action": "createSession", "sourceLanguage": "en"}) == \
                    "SPEAKER_ONLY"
                await heartbeat(listener)

    run(scenario())
    assert get_session(http, stack, session_id)["status"] == "active"
    assert seqs(stack, session_id) == []


@pytest.mark.local_only("injects faults into the local Management API")
def test_audio_and_control_after_the_session_ended_answer_session_ended(stack, http):
    """Between the end of a session and its teardown reaching the speaker's socket, the socket is still
    open. The local Management API's @faults hook keeps the teardown from reaching it until released."""
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)))
            await heartbeat(speaker)
            (connection,) = [i["connectionId"]["S"] for i in items(stack, session_id, "CONN#")]
            assert await asyncio.to_thread(inject_post_faults, stack, connection, 1000) == 204
            try:
                assert http.delete(f"/sessions/{session_id}", headers=stack.auth()).status_code == 204
                assert await error_for(speaker, audio(1)) == "SESSION_ENDED"
                assert await error_for(speaker, {"action": "pause"}) == "SESSION_ENDED"
                assert await error_for(speaker, {"action": "resume"}) == "SESSION_ENDED"
            finally:
                assert await asyncio.to_thread(inject_post_faults, stack, connection, 0) == 204
            # Released, the retried teardown reaches the socket.
            code, messages = await closed(speaker, timeout=60)
            assert [m["type"] for m in messages if m["type"] != "status"] == ["sessionEnded"] and code == 1001

    run(scenario())
    assert seqs(stack, session_id) == [0]


def inject_post_faults(stack: LocalStackHandle, connection_id: str, count: int) -> int:
    """The local Management API's test hook: the next `count` posts to the connection answer 500."""
    return httpx.post(f"{stack['managementApiUrl']}/@faults/{quote(connection_id, safe='')}",
                      params={"count": count}).status_code
