"""Audio to listeners end to end (docs/protocols.md "Audio to listeners"): real WebSockets to the local stack,
the speaker's sendAudio through Kinesis to the fan-out function (an enhanced fan-out consumer's mapping, run by
the local stack's Kinesis poller), and the pipeline's translated-audio stream written as a pipeline would."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from tests.e2e.conftest import eventually
from tests.e2e.test_websocket_api import (
    Sockets,
    ask,
    audio,
    heartbeat,
    http,  # noqa: F401 - the module's HTTP client fixture
    new_session,
    of_type,
    receive,
    run,
)

NOT_SENT_WAIT = 1.5  # how long a listener of another language is watched for audio it must not get


async def audio_messages(ws, count: int, kind: str = "audio", timeout: float = 10.0) -> list[dict]:
    return [await receive(ws, of_type(kind), timeout) for _ in range(count)]


async def nothing_of_type(ws, kind: str) -> None:
    with pytest.raises(AssertionError):
        await receive(ws, of_type(kind), NOT_SENT_WAIT)


def test_floor_audio_reaches_the_source_language_listeners_in_order_and_no_other(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            english = await sockets.listener(session_id, targetLanguage="en")
            original = await sockets.listener(session_id)  # no language: the original
            spanish = await sockets.listener(session_id, targetLanguage="es")
            for ws in (english, original, spanish):
                await heartbeat(ws)
            for seq in range(5):
                await speaker.send(json.dumps(audio(seq, f"pcm-{seq}".encode())))
            for ws in (english, original):
                got = await audio_messages(ws, 5)
                assert [m["sequenceNumber"] for m in got] == [0, 1, 2, 3, 4]
                assert [base64.b64decode(m["audioData"]) for m in got] == [f"pcm-{s}".encode() for s in range(5)]
                assert {k: got[0][k] for k in ("sessionId", "language", "format", "sampleRate", "channels")} == {
                    "sessionId": session_id, "language": "en", "format": "pcm", "sampleRate": 16000, "channels": 1}
                assert isinstance(got[0]["timestamp"], int)
            await nothing_of_type(spanish, "audio")

    run(scenario())
