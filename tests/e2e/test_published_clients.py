"""The clients that exist today, end to end: each published client's exact messages, written from its
documents (the hybrid front-end's messageTypes.ts, SpeakerService.ts, ListenerService.ts and WebSocketClient.ts;
the old protocol's design document and its Python and JavaScript example clients), against the local stack over
real WebSocket connections. docs/protocols.md has the table these tests hold the server to.

What each test asserts is what the client's own code reacts to: the type it switches on and the fields it
reads. Our own clients' vocabulary is tested in test_ws_*.py (the old one in test_ws_legacy.py) and stays
unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from tests.e2e.ws_helpers import (
    Sockets,
    eventually_async,
    heartbeat,
    of_type,
    receive,
    refused,
    run,
    session_item,
)

PCM = base64.b64encode(b"\x01\x00" * 800).decode()  # 50 ms of 16 kHz mono s16le


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def hybrid_create(http, stack, user: str = "alice", language: str = "en") -> str:
    """SessionHttpService.createSession: POST /sessions with the Cognito token as a Bearer header."""
    response = http.post("/sessions", headers=stack.auth(user), json={"sourceLanguage": language,
                                                                       "qualityTier": "standard"})
    assert response.status_code == 201, response.text
    return response.json()["sessionId"]


def records(stack, session_id: str) -> list[dict]:
    return stack.audio_records(session_id)


async def send(ws, message: dict) -> None:
    await ws.send(json.dumps(message))


def now_ms() -> int:
    return int(time.time() * 1000)


# --------------------------------------------------------------------------- the hybrid front-end


def test_hybrid_speaker_connects_with_token_and_session_id_only_and_streams(stack, http):
    # SessionCreationOrchestrator: wsClient.connect({sessionId}) with the token in the query; no role.
    session_id = hybrid_create(http, stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(token=stack.token("alice"), sessionId=session_id)
            # WebSocketClient's heartbeat carries a timestamp; it resets its timer on heartbeatAck.
            await send(speaker, {"action": "heartbeat", "timestamp": now_ms()})
            await receive(speaker, of_type("heartbeatAck"))
            # messageTypes.ts SendAudioMessage, and SpeakerService's audioChunk (no chunkIndex).
            await send(speaker, {"action": "sendAudio", "audioData": PCM, "timestamp": 1700000000001,
                                 "chunkId": "chunk-1", "duration": 0.05})
            await send(speaker, {"action": "audioChunk", "sessionId": session_id, "audioData": PCM,
                                 "timestamp": 1700000000002, "format": "pcm", "sampleRate": 16000, "channels": 1,
                                 "encoding": "s16le"})
            await heartbeat(speaker)
            found = await eventually_async(lambda: len(records(stack, session_id)) == 2 and records(stack, session_id),
                                           what="two audio records")
            by_time = sorted(found, key=lambda r: r["clientTimestamp"])
            assert [r["seq"] for r in by_time] == [None, None]
            assert by_time[0]["chunkId"] == "chunk-1" and by_time[0]["clientTimestamp"] == 1700000000001
            assert by_time[1]["clientTimestamp"] == 1700000000002 and "chunkId" not in by_time[1]
            assert all(r["audio"] == PCM and r["partitionKey"] == session_id for r in found)

    run(scenario())


def test_hybrid_listener_joins_hears_the_speakers_controls_and_the_end(stack, http):
    session_id = hybrid_create(http, stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(token=stack.token("alice"), sessionId=session_id)
            # ListenerService.initialize: connect({sessionId, targetLanguage}), then joinSession. The hybrid
            # listener app signs its listeners in (the token in the query): a signed-in listener joins a link
            # session by its ID alone.
            listener = await sockets.open(sessionId=session_id, targetLanguage="es", token=stack.token("bob"))
            await send(listener, {"action": "joinSession", "sessionId": session_id, "targetLanguage": "es"})
            joined = await receive(listener, of_type("sessionJoined"))
            assert joined["sessionId"] == session_id and joined["targetLanguage"] == "es"
            assert joined["sourceLanguage"] == "en" and joined["listenerCount"] == 1 and joined["connectionId"]

            # SpeakerService.pause/resume/mute/unmute send {action, timestamp}: no sessionId.
            for action, told, answered in (("pauseBroadcast", "broadcastPaused", "speakerPaused"),
                                           ("resumeBroadcast", "broadcastResumed", "speakerResumed"),
                                           ("muteBroadcast", "broadcastMuted", "speakerMuted"),
                                           ("unmuteBroadcast", "broadcastUnmuted", "speakerUnmuted")):
                await send(speaker, {"action": action, "timestamp": now_ms()})
                assert (await receive(speaker, of_type(answered)))["sessionId"] == session_id
                assert (await receive(listener, of_type(told)))["sessionId"] == session_id

            # SpeakerService polls getSessionStatus (no sessionId) and reads listenerCount, languageDistribution.
            await send(speaker, {"action": "getSessionStatus"})
            status = await receive(speaker, of_type("sessionStatus"), only_new=True)
            assert status["listenerCount"] == 1 and status["languageDistribution"] == {"es": 1}
            assert status["isActive"] is True

            # ListenerService.switchLanguage sends changeLanguage; the type file names switchLanguage.
            await send(listener, {"action": "changeLanguage", "targetLanguage": "fr", "timestamp": now_ms()})
            await heartbeat(listener)
            await send(speaker, {"action": "switchLanguage", "targetLanguage": "de"})  # a speaker hears no language
            assert (await receive(speaker, of_type("error")))["code"] == "LISTENER_ONLY"
            await send(speaker, {"action": "getSessionStatus", "sessionId": session_id})
            status = await receive(speaker, of_type("sessionStatus"), only_new=True)
            assert status["languageDistribution"] == {"fr": 1}

            # SpeakerService.endSession: {sessionId, reason}; the listener app reacts to sessionEnded.
            await send(speaker, {"action": "endSession", "sessionId": session_id, "reason": "Speaker ended session"})
            ended = await receive(listener, of_type("sessionEnded"), timeout=20)
            assert ended["sessionId"] == session_id and ended["reason"]
            await receive(speaker, of_type("sessionEnded"), timeout=20)
        assert session_item(stack, session_id)["status"]["S"] == "ended"

    run(scenario())


def test_muted_audio_reaches_no_one_and_unmuted_audio_flows_again(stack, http):
    session_id = hybrid_create(http, stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(token=stack.token("alice"), sessionId=session_id)
            await send(speaker, {"action": "muteBroadcast", "timestamp": now_ms()})
            await receive(speaker, of_type("speakerMuted"))
            await send(speaker, {"action": "sendAudio", "audioData": PCM, "timestamp": 1, "chunkId": "muted"})
            await send(speaker, {"action": "unmuteBroadcast", "timestamp": now_ms()})
            await receive(speaker, of_type("speakerUnmuted"))
            await send(speaker, {"action": "sendAudio", "audioData": PCM, "timestamp": 2, "chunkId": "heard"})
            await heartbeat(speaker)
            found = await eventually_async(lambda: records(stack, session_id), what="the unmuted chunk")
            assert [r["chunkId"] for r in found] == ["heard"]

    run(scenario())


def test_a_listener_of_a_published_client_cannot_control_the_session(stack, http):
    session_id = hybrid_create(http, stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            await sockets.open(token=stack.token("alice"), sessionId=session_id)
            # Signed in, but not the owner: a listener, whatever it sends.
            intruder = await sockets.open(token=stack.token("bob"), sessionId=session_id)
            for message in ({"action": "pauseBroadcast"}, {"action": "endSession", "sessionId": session_id},
                            {"action": "sendAudio", "audioData": PCM, "timestamp": 1, "chunkId": "x"}):
                await send(intruder, message)
                assert (await receive(intruder, of_type("error")))["code"] == "SPEAKER_ONLY"
            assert session_item(stack, session_id)["status"]["S"] == "active"

    run(scenario())


def test_hybrid_refresh_completes_on_a_new_connection(stack, http):
    # useConnectionRefresh sends refreshConnection and waits for connectionRefreshComplete: on a connection
    # young enough (a new one) it completes; docs/protocols.md says why an old one cannot be refreshed in place.
    session_id = hybrid_create(http, stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(token=stack.token("alice"), sessionId=session_id)
            await send(speaker, {"action": "refreshConnection", "sessionId": session_id})
            done = await receive(speaker, of_type("connectionRefreshComplete"))
            assert done["sessionId"] == session_id and done["newConnectionId"] and done["role"] == "speaker"

    run(scenario())


def test_published_messages_with_a_foreign_session_id_are_refused(stack, http):
    mine, other = hybrid_create(http, stack), hybrid_create(http, stack, "bob")

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(token=stack.token("alice"), sessionId=mine)
            for message in ({"action": "endSession", "sessionId": other, "reason": "x"},
                            {"action": "audioChunk", "sessionId": other, "audioData": PCM},
                            {"action": "getSessionStatus", "sessionId": other}):
                await send(speaker, message)
                assert (await receive(speaker, of_type("error")))["code"] == "SESSION_MISMATCH"
            await send(speaker, {"action": "sendAudio", "audioData": "not base64!", "timestamp": 1, "chunkId": "x"})
            error = await receive(speaker, of_type("error"))
            assert error["code"] == "INVALID_AUDIO" and "not base64" not in error["message"]
        assert session_item(stack, other)["status"]["S"] == "active"

    run(scenario())


# --------------------------------------------------------------------------- the old protocol


def old_speaker_url(stack) -> dict:
    # speaker_client.py / speaker-client.js: the session is created by the connection itself.
    return {"action": "createSession", "sourceLanguage": "en", "qualityTier": "standard", "token": stack.token("alice")}


def test_old_speaker_creates_its_session_at_connect_and_is_told_without_asking(stack):
    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.open(**old_speaker_url(stack))
            created = await receive(speaker, of_type("sessionCreated"))  # it sends nothing before this
            session_id = created["sessionId"]
            item = session_item(stack, session_id)
            assert item["status"]["S"] == "active" and item["sourceLanguage"]["S"] == "en"
            assert item["access"]["S"] == "public" and "joinKey" not in item  # as the old protocol had it

            listener = await sockets.open(action="joinSession", sessionId=session_id, targetLanguage="es")
            joined = await receive(listener, of_type("sessionJoined"))
            assert joined["sessionId"] == session_id and joined["targetLanguage"] == "es"

            # The example speakers: sendAudio {sessionId, audioData}; controlSession {sessionId, command}.
            await send(speaker, {"action": "sendAudio", "sessionId": session_id, "audioData": PCM})
            await send(speaker, {"action": "controlSession", "sessionId": session_id, "command": "pause"})
            assert (await receive(listener, of_type("sessionPaused")))["sessionId"] == session_id
            await send(speaker, {"action": "controlSession", "sessionId": session_id, "command": "resume"})
            assert (await receive(listener, of_type("sessionResumed")))["sessionId"] == session_id
            await send(speaker, {"action": "controlSession", "sessionId": session_id, "command": "rewind"})
            assert (await receive(speaker, of_type("error")))["code"] == "VALIDATION_ERROR"
            await send(speaker, {"action": "heartbeat"})
            await receive(speaker, of_type("heartbeatAck"))
            found = await eventually_async(lambda: records(stack, session_id), what="the old speaker's chunk")
            assert [(r["seq"], r["audio"]) for r in found] == [(None, PCM)]

            # The old listener's changeLanguage moves it: the records name the languages listened to.
            await send(listener, {"action": "changeLanguage", "sessionId": session_id, "targetLanguage": "fr"})
            await heartbeat(listener)
            await send(speaker, {"action": "sendAudio", "sessionId": session_id, "audioData": PCM})
            found = await eventually_async(lambda: len(records(stack, session_id)) == 2 and records(stack, session_id))
            assert found[-1]["listenerLanguages"] == ["fr"]

            # The session lives as long as its speaker's connection (the old design's $disconnect).
            await speaker.close()
            ended = await receive(listener, of_type("sessionEnded"), timeout=20)
            assert ended["sessionId"] == session_id

    run(scenario())


def test_old_speaker_and_listener_refresh_before_the_two_hour_limit(stack):
    async def scenario():
        async with Sockets(stack) as sockets:
            old_speaker = await sockets.open(**old_speaker_url(stack))
            session_id = (await receive(old_speaker, of_type("sessionCreated")))["sessionId"]
            old_listener = await sockets.open(action="joinSession", sessionId=session_id, targetLanguage="es")
            await receive(old_listener, of_type("sessionJoined"))

            # _handle_connection_refresh: a new connection, wait for connectionRefreshComplete, close the old one.
            new_speaker = await sockets.open(action="refreshConnection", sessionId=session_id, role="speaker",
                                             token=stack.token("alice"))
            done = await receive(new_speaker, of_type("connectionRefreshComplete"))
            assert done["sessionId"] == session_id and done["role"] == "speaker"
            new_listener = await sockets.open(action="refreshConnection", sessionId=session_id, targetLanguage="es",
                                              role="listener")
            done = await receive(new_listener, of_type("connectionRefreshComplete"))
            assert done["sessionId"] == session_id and done["targetLanguage"] == "es"
            await old_speaker.close(1000, "Connection refresh")
            await old_listener.close(1000, "Connection refresh")

            # The session goes on with the new connections: audio, controls, one listener counted.
            await send(new_speaker, {"action": "sendAudio", "sessionId": session_id, "audioData": PCM})
            await send(new_speaker, {"action": "controlSession", "sessionId": session_id, "command": "pause"})
            await receive(new_listener, of_type("sessionPaused"))
            await eventually_async(lambda: session_item(stack, session_id)["listenerCount"]["N"] == "1",
                                   what="one listener counted after the refresh")
            assert session_item(stack, session_id)["status"]["S"] == "paused"
            await new_speaker.close()
            await receive(new_listener, of_type("sessionEnded"), timeout=20)

    run(scenario())


def test_old_connect_actions_are_held_to_the_same_rules(stack, http):
    session_id = hybrid_create(http, stack)

    async def scenario():
        # Creating needs a token; joining needs a live session; refreshing as a speaker needs its owner.
        assert await refused(stack, action="createSession", sourceLanguage="en", qualityTier="standard") == 401
        assert await refused(stack, action="createSession", sourceLanguage="xx", token=stack.token("alice")) == 403
        assert await refused(stack, action="joinSession", sessionId="absent-otter-123", targetLanguage="es") == 403
        assert await refused(stack, action="joinSession", sessionId=session_id, targetLanguage="xx") == 403
        assert await refused(stack, action="refreshConnection", sessionId=session_id, role="speaker",
                             token=stack.token("bob")) == 403
        assert await refused(stack, action="dance", sessionId=session_id) == 403

    run(scenario())


def test_every_old_speaker_is_told_its_session_when_several_connect_at_once(stack):
    # The figure lives in bench/ (bench/websocket.py, "old speaker connect -> sessionCreated"); here only that
    # every connect is told, several in a row, none lost to the window before the handshake completes.
    async def scenario():
        async with Sockets(stack) as sockets:
            speakers = await asyncio.gather(*(sockets.open(**old_speaker_url(stack)) for _ in range(5)))
            created = await asyncio.gather(*(receive(ws, of_type("sessionCreated")) for ws in speakers))
            assert len({message["sessionId"] for message in created}) == 5

    run(scenario())
