"""The old protocols over the WebSocket: a session created over the socket (no POST /sessions), and an old client
playing a whole session in its own vocabulary (createSession, audioChunk, pauseBroadcast, resumeBroadcast), each
old message counted. Legacy creation switched off: test_ws_template_parameters.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time

import pytest
from session_core.session_ids import is_valid_session_id

from tests.e2e.conftest import eventually
from tests.e2e.ws_helpers import (
    Sockets,
    ask,
    audio,
    audio_chunk,
    closed,
    error_for,
    get_session,
    heartbeat,
    legacy_messages_counted,
    of_type,
    run,
    seqs,
    session_item,
    sub_of,
)


@pytest.mark.local_only("reads the function's log file")
def test_legacy_session_creation_over_the_websocket(stack, http):
    metric_lines_before = sum("LegacySessionCreation" in line for line in stack.log_lines("WsCreateSessionFunction")
                              if "_aws" in line)

    async def scenario():
        async with Sockets(stack) as sockets:
            legacy = await sockets.open(role="speaker", token=stack.token("alice"))
            # Audio before a session exists has nowhere to go.
            assert await error_for(legacy, audio(0)) == "SESSION_NOT_FOUND"
            assert await error_for(legacy, {"action": "createSession", "sourceLanguage": "xx"}) == \
                "VALIDATION_ERROR"
            created = await ask(legacy, {"action": "createSession", "sourceLanguage": "fr",
                                         "qualityTier": "premium"}, of_type("sessionCreated"))
            session_id = created["sessionId"]
            assert is_valid_session_id(session_id)
            assert (created["sourceLanguage"], created["qualityTier"]) == ("fr", "premium")
            session = get_session(http, stack, session_id)
            assert (session["speakerId"], session["sourceLanguage"], session["qualityTier"], session["status"]) == (
                sub_of(stack, "alice"), "fr", "premium", "active")
            assert await error_for(legacy, {"action": "createSession", "sourceLanguage": "fr"}) == \
                "ALREADY_IN_SESSION"
            for seq in range(3):
                await legacy.send(json.dumps(audio(seq)))
            await heartbeat(legacy)
            # Listeners join it like any other session.
            listener = await sockets.listener(session_id)
            await heartbeat(listener)
            await legacy.close()  # ends the legacy session
            code, messages = await closed(listener, timeout=30)
            # (It may hear the speaker's audio first: a listener of the source language gets the floor audio.)
            assert [m["type"] for m in messages if m["type"] not in ("status", "audio")] == ["sessionEnded"]
            assert code == 1001
            return session_id

    session_id = run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 1, 2]
    assert {(r["sourceLanguage"], r["qualityTier"]) for r in records} == {("fr", "premium")}
    ended = get_session(http, stack, session_id)
    assert ended["status"] == "ended" and ended["endedAt"] >= ended["createdAt"]
    assert sum("LegacySessionCreation" in line for line in stack.log_lines("WsCreateSessionFunction")
               if "_aws" in line) == metric_lines_before + 1


SESSION_CREATED_KEYS = {"type", "sessionId", "sourceLanguage", "qualityTier", "partialResultsEnabled",
                        "minStabilityThreshold", "maxBufferTimeout", "connectionId", "timestamp"}


@pytest.mark.local_only("reads the EMF metrics from the function's log file")
def test_an_old_client_plays_a_whole_session_in_its_own_vocabulary(stack, http):
    counted_before = legacy_messages_counted(stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            old = await sockets.open(role="speaker", token=stack.token("alice"))
            before = int(time.time() * 1000)
            created = await ask(old, {"action": "createSession", "sourceLanguage": "de", "qualityTier": "premium",
                                      "partialResults": "false", "minStability": 0.9, "maxBufferTimeout": 3.5,
                                      "oldClientBuild": "4.2.0"}, of_type("sessionCreated"))
            assert set(created) == SESSION_CREATED_KEYS, created
            session_id = created["sessionId"]
            assert before - 1000 <= created["timestamp"] <= int(time.time() * 1000) + 1000
            assert (created["sourceLanguage"], created["qualityTier"], created["partialResultsEnabled"],
                    created["minStabilityThreshold"], created["maxBufferTimeout"]) == ("de", "premium", False, 0.9, 3.5)
            item = await asyncio.to_thread(session_item, stack, session_id)
            assert created["connectionId"] == item["speakerConnectionId"]["S"]
            session = get_session(http, stack, session_id)
            assert (session["partialResultsEnabled"], session["minStabilityThreshold"],
                    session["maxBufferTimeout"]) == (False, 0.9, 3.5)

            for index in range(3):
                await old.send(json.dumps(audio_chunk(index, session_id)))
            paused = await ask(old, {"action": "pauseBroadcast"}, of_type("status", status="paused"))
            assert paused == {"type": "status", "sessionId": session_id, "status": "paused", "listenerCount": 0,
                              "listenersByLanguage": {}, "speakerConnected": True}
            for index in range(3, 5):
                await old.send(json.dumps(audio_chunk(index, session_id)))
            await heartbeat(old)
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2]  # held while paused
            # The same refusals as sendAudio's, and the connection stays open.
            assert await error_for(old, audio_chunk(9, "other-eagle-123")) == "SESSION_MISMATCH"
            assert await error_for(old, {**audio_chunk(9, session_id), "chunkIndex": -1}) == "INVALID_SEQ"
            await ask(old, {"action": "resumeBroadcast", "sessionId": session_id}, of_type("status", status="active"))
            await heartbeat(old)  # the resume's reply may be overtaken by its broadcast
            assert await asyncio.to_thread(seqs, stack, session_id) == [0, 1, 2, 3, 4]
            await old.send(json.dumps(audio_chunk(5, session_id)))
            await heartbeat(old)
            await old.close()  # ends the session, as it always did
            return session_id

    session_id = run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 1, 2, 3, 4, 5]
    assert [base64.b64decode(r["audio"]) for r in records] == [f"old-chunk-{i}".encode() for i in range(6)]
    for record in records:
        assert (record["sourceLanguage"], record["qualityTier"], record["partialResultsEnabled"],
                record["minStabilityThreshold"], record["maxBufferTimeout"]) == ("de", "premium", False, 0.9, 3.5)
    assert {r["shard"] for r in records} == {records[0]["shard"]}
    eventually(lambda: get_session(http, stack, session_id)["status"] == "ended", what="the session ended")
    # Every old message counted by action, refused ones too.
    expected = {"createSession": 1, "audioChunk": 8, "pauseBroadcast": 1, "resumeBroadcast": 1}
    eventually(lambda: {action: legacy_messages_counted(stack)[action] - counted_before[action]
                        for action in expected} == expected, what="LegacyProtocolMessage by action")
    ignored = [line for line in stack.log_lines("WsCreateSessionFunction")
               if line.get("message") == "legacy message fields ignored"]
    assert [line["ignoredFields"] for line in ignored] == [["oldClientBuild"]]
