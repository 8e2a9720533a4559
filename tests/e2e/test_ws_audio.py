"""sendAudio and what a socket does with a message it cannot serve: audio reaches Kinesis complete and in order;
a message over 128 KB closes the socket (1009), a binary frame too (1003); a malformed message is answered with
an error and the connection stays open. A MaxAudioBytes below its default: test_ws_template_parameters.py.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from tests.e2e.conftest import eventually
from tests.e2e.ws_helpers import (
    Sockets,
    audio,
    closed,
    error_for,
    get_session,
    heartbeat,
    items,
    new_session,
    of_type,
    receive,
    run,
    seqs,
)

FRAME_BYTES = 32 * 1024  # API Gateway's largest frame: a longer message goes in several
DEFAULT_MAX_AUDIO_BYTES = 24000  # the template's MaxAudioBytes default: one frame's worth


def frames(message: dict) -> list[str]:
    """The message as frames of at most FRAME_BYTES (ASCII JSON: a character is a byte)."""
    text = json.dumps(message)
    return [text[i:i + FRAME_BYTES] for i in range(0, len(text), FRAME_BYTES)]


def test_audio_reaches_kinesis_complete_and_in_order(stack, http):
    session = new_session(http, stack, sourceLanguage="fr", qualityTier="premium")
    session_id = session["sessionId"]
    chunks = {seq: bytes([seq]) * (100 + seq) for seq in range(25)}

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for seq, payload in chunks.items():
                await speaker.send(json.dumps(audio(seq, payload)))
            await heartbeat(speaker)

    before = int(time.time() * 1000)
    run(scenario())
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len(r) >= len(chunks) and r,
                         what="25 records in Kinesis")
    assert [r["seq"] for r in records] == list(chunks)
    assert [base64.b64decode(r["audio"]) for r in records] == list(chunks.values())
    assert {r["shard"] for r in records} == {records[0]["shard"]}  # one partition key: one shard, one order
    assert {r["partitionKey"] for r in records} == {session_id}
    for record in records:
        assert (record["sourceLanguage"], record["qualityTier"]) == ("fr", "premium")
        assert before - 1000 <= record["receivedAt"] <= record["forwardedAt"] <= int(time.time() * 1000) + 1000
    assert items(stack, session_id, "AUDIO#") == []  # nothing held while active


def test_a_message_over_128_kb_closes_the_socket_with_1009(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            # A chunk of MaxAudioBytes fits one frame and goes through.
            await speaker.send(json.dumps(audio(0, b"\x01" * DEFAULT_MAX_AUDIO_BYTES)))
            await heartbeat(speaker)
            # Just under the message cap (92 KB of audio, 123 KB of JSON in 4 frames): delivered, and
            # answered AUDIO_TOO_LARGE (over MaxAudioBytes); the connection stays open.
            near_cap = frames(audio(1, b"\x01" * (92 * 1024)))
            assert 120 * 1024 < len("".join(near_cap)) < 128 * 1024
            await speaker.send(near_cap)
            assert (await receive(speaker, of_type("error")))["code"] == "AUDIO_TOO_LARGE"
            await heartbeat(speaker)
            await speaker.send(frames(audio(2, b"\x02" * (100 * 1024))))  # ~133 KB of JSON
            code, _ = await closed(speaker)
            assert code == 1009
            # The session is not harmed: the speaker reconnects and goes on.
            again = await sockets.speaker(session_id)
            await again.send(json.dumps(audio(3)))
            await heartbeat(again)

    run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [0, 3]
    assert len(base64.b64decode(records[0]["audio"])) == DEFAULT_MAX_AUDIO_BYTES
    assert get_session(http, stack, session_id)["status"] == "active"


def test_a_binary_frame_closes_the_socket_with_1003(stack, http):
    session_id = new_session(http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            await speaker.send(json.dumps(audio(0)).encode())  # bytes: a binary frame
            code, messages = await closed(speaker)
            assert code == 1003 and messages == []

    run(scenario())
    assert seqs(stack, session_id) == []


MALFORMED = [
    ("not json", "INVALID_MESSAGE"),
    ("[1, 2]", "INVALID_MESSAGE"),
    ('"sendAudio"', "INVALID_MESSAGE"),
    ('{"seq": 1}', "INVALID_MESSAGE"),
    ('{"action": "dance"}', "UNKNOWN_ACTION"),
    ('{"action": 5}', "UNKNOWN_ACTION"),
    ('{"action": "$connect"}', "UNKNOWN_ACTION"),
    ('{"action": "sendAudio", "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": "1", "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": 1.5, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": -1, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": true, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": null, "data": "AAEC"}', "INVALID_SEQ"),
    ('{"action": "sendAudio", "seq": 1}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": ""}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": 12}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": "not base64!"}', "INVALID_AUDIO"),
    ('{"action": "sendAudio", "seq": 1, "data": "AAE"}', "INVALID_AUDIO"),
    ('{"action": "createSession", "sourceLanguage": "en"}', "ALREADY_IN_SESSION"),
]


@pytest.fixture(scope="module")
def malformed_session(http, stack):
    return new_session(http, stack)["sessionId"]


@pytest.mark.parametrize(("frame", "code"), MALFORMED)
def test_a_malformed_message_answers_an_error_and_the_connection_stays_open(stack, malformed_session, frame,
                                                                              code):
    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(malformed_session)
            assert await error_for(speaker, frame) == code
            await heartbeat(speaker)  # still open and served
            await speaker.send(json.dumps(audio(7)))
            await heartbeat(speaker)

    run(scenario())
    assert 1 not in seqs(stack, malformed_session)  # nothing of the bad frames was forwarded
