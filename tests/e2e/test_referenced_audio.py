"""Referenced audio end to end (docs/protocols.md "Audio to listeners"): real WebSockets to the local stack; the
speaker's and the pipeline's audio through Kinesis to ReferencedAudioFunction (mappings with a 2 s batching window,
run by the local stack's Kinesis poller), stored in the local S3 bucket, and fetched by the listener from the
presigned URL it is posted, as the hybrid listener client does from a browser (CORS answered)."""

from __future__ import annotations

import asyncio
import io
import json
import wave
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.test_listener_audio import audio_messages, nothing_of_type, pcm, put_raw, put_translated
from tests.e2e.ws_helpers import Sockets, audio, heartbeat, new_session, of_type, receive, run

BROWSER = "http://localhost:3002"  # the console's origin: where the listener page fetches chunks from
CHUNK_WAIT = 15.0  # a chunk is posted once its 2 s batching window closes; the shared machine adds its own delay


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


async def hybrid_listener(sockets: Sockets, stack, session_id: str, language: str):
    """The hybrid listener app: no role in the query, a token; it plays translatedAudio by URL."""
    ws = await sockets.open(sessionId=session_id, targetLanguage=language, token=stack.token("bob"))
    await heartbeat(ws)
    return ws


def fetched(url: str) -> bytes:
    """The PCM of a chunk, fetched as a browser on another origin would: the WAV, and CORS letting the page read it."""
    response = httpx.get(url, headers={"Origin": BROWSER}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "audio/wav"
    assert response.headers["access-control-allow-origin"] in (BROWSER, "*")
    with wave.open(io.BytesIO(response.content)) as chunk:
        assert (chunk.getframerate(), chunk.getnchannels(), chunk.getsampwidth()) == (16000, 1, 2)
        return chunk.readframes(chunk.getnframes())


async def chunks_until(ws, pcm_bytes: int) -> list[dict]:
    """translatedAudio messages until their chunks hold `pcm_bytes` of audio, in rising order."""
    messages, got = [], b""
    while len(got) < pcm_bytes:
        message = await receive(ws, of_type("translatedAudio"), CHUNK_WAIT)
        messages.append(message)
        got += await asyncio.to_thread(fetched, message["url"])
    numbers = [m["sequenceNumber"] for m in messages]
    assert numbers == sorted(set(numbers)), numbers
    return messages


def tone(sequence: int) -> bytes:
    return bytes([sequence % 256]) * 3200  # 100 ms of 16 kHz 16-bit mono


def test_a_hybrid_listener_gets_its_languages_translated_audio_by_url_and_inline_listeners_are_unaffected(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            hybrid = await hybrid_listener(sockets, stack, session_id, "es")
            other = await hybrid_listener(sockets, stack, session_id, "fr")
            inline = await sockets.listener(session_id, targetLanguage="es")
            await heartbeat(inline)
            for sequence in range(10):
                await asyncio.to_thread(put_translated, stack, session_id, "es", sequence, tone(sequence),
                                        transcript=f"hola {sequence}")
            expected = b"".join(tone(s) for s in range(10))
            messages = await chunks_until(hybrid, len(expected))
            assert b"".join([await asyncio.to_thread(fetched, m["url"]) for m in messages]) == expected
            first = messages[0]
            assert {k: first[k] for k in ("type", "sessionId", "targetLanguage", "sequenceNumber", "timestamp")} == {
                "type": "translatedAudio", "sessionId": session_id, "targetLanguage": "es", "sequenceNumber": 0,
                "timestamp": 1700000000000}
            assert first["transcript"].startswith("hola 0") and sum(m["duration"] for m in messages) == 1.0
            # The inline listener hears the same audio inline, and is posted no URL.
            assert pcm(await audio_messages(inline, 10)) == expected
            await nothing_of_type(inline, "translatedAudio")
            await nothing_of_type(other, "translatedAudio")
            await nothing_of_type(hybrid, "audio")

    run(scenario())


def test_a_native_listener_who_chose_referenced_chunks_gets_them_and_keeps_them_across_a_language_switch(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id, targetLanguage="fr", delivery="referenced")
            await heartbeat(listener)
            await listener.send(json.dumps({"action": "switchLanguage", "targetLanguage": "es"}))
            await receive(listener, of_type("languageSwitched"))
            await asyncio.to_thread(put_translated, stack, session_id, "es", 3, tone(3))
            (message,) = await chunks_until(listener, 3200)
            assert message["targetLanguage"] == "es" and message["sequenceNumber"] == 3
            await nothing_of_type(listener, "audio")

    run(scenario())


def test_an_unknown_delivery_is_refused_at_connect(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            with pytest.raises(InvalidStatus) as refused:
                await sockets.listener(session_id, targetLanguage="es", delivery="carrier-pigeon")
            assert refused.value.response.status_code == 403

    run(scenario())


def test_a_hybrid_listener_of_the_source_language_gets_the_floor_audio_by_url(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            listener = await hybrid_listener(sockets, stack, session_id, "en")
            for seq in range(5):
                await speaker.send(json.dumps(audio(seq, tone(seq))))
            messages = await chunks_until(listener, 5 * 3200)
            assert {m["targetLanguage"] for m in messages} == {"en"}
            assert b"".join([await asyncio.to_thread(fetched, m["url"]) for m in messages]) == b"".join(
                tone(s) for s in range(5))

    run(scenario())


def test_a_chunk_url_grants_that_chunk_only(stack, http):
    """The URL is signed with the function's role, which may read the bucket's chunks and nothing else."""
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await hybrid_listener(sockets, stack, session_id, "es")
            await asyncio.to_thread(put_translated, stack, session_id, "es", 0, tone(0))
            return (await receive(listener, of_type("translatedAudio"), CHUNK_WAIT))["url"]

    url = urlsplit(run(scenario()))
    bucket = url.path.lstrip("/").split("/", 1)[0]
    elsewhere = urlunsplit(url._replace(path=f"/{bucket}/not-a-chunk.wav"))
    refused = httpx.get(elsewhere, timeout=10)
    assert refused.status_code == 403 and b"AccessDenied" in refused.content


def referenced_metric(stack, name: str) -> float:
    return sum(sum(line[name]) if isinstance(line[name], list) else line[name]
               for line in stack.log_lines("ReferencedAudioFunction") if name in line and "_aws" in line)


def fail_stores(stack, count: int) -> None:
    r = httpx.post(f"{stack['functionsEndpointUrl']}/@faults", json={
        "operation": "PutObject", "count": count, "mode": "fail", "function": "ReferencedAudioFunction"})
    assert r.status_code == 204, r.text


@pytest.mark.local_only("injects a storage failure and reads the function's log")
def test_a_chunk_that_cannot_be_stored_is_counted_and_no_dead_url_is_posted(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]
    before = referenced_metric(stack, "ReferencedChunksNotStored")

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await hybrid_listener(sockets, stack, session_id, "es")
            # Every attempt of the next store fails (botocore retries it), until cleared below.
            fail_stores(stack, 10)
            await asyncio.to_thread(put_translated, stack, session_id, "es", 0, tone(0))
            await nothing_of_type(listener, "translatedAudio")
            deadline = asyncio.get_running_loop().time() + CHUNK_WAIT
            while referenced_metric(stack, "ReferencedChunksNotStored") <= before:
                assert asyncio.get_running_loop().time() < deadline, "the failed store was not counted"
                await asyncio.sleep(0.2)
            fail_stores(stack, 0)
            # The next chunk is stored and posted as usual.
            await asyncio.to_thread(put_translated, stack, session_id, "es", 1, tone(1))
            (message,) = await chunks_until(listener, 3200)
            assert message["sequenceNumber"] == 1 and await asyncio.to_thread(fetched, message["url"]) == tone(1)

    run(scenario())


@pytest.mark.local_only("reads the function's log")
def test_malformed_records_are_counted_and_hold_back_no_chunk(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]
    before = referenced_metric(stack, "AudioRecordsMalformed")

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await hybrid_listener(sockets, stack, session_id, "es")
            await asyncio.to_thread(put_raw, stack, f"{session_id}#es", b"not json")
            await asyncio.to_thread(put_translated, stack, session_id, "es", 7, tone(7))
            (message,) = await chunks_until(listener, 3200)
            assert message["sequenceNumber"] == 7
            assert referenced_metric(stack, "AudioRecordsMalformed") >= before + 1

    run(scenario())
