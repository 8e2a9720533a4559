"""Audio to listeners end to end (docs/protocols.md "Audio to listeners"): real WebSockets to the local stack,
the speaker's sendAudio through Kinesis to the fan-out function (an enhanced fan-out consumer's mapping, run by
the local stack's Kinesis poller), and the pipeline's translated-audio stream written as a pipeline would."""

from __future__ import annotations

import asyncio
import base64
import json
import time

import httpx
import pytest

from local_stack.launcher import running_stack
from tests.e2e.conftest import LocalStackHandle, eventually
from tests.e2e.ws_helpers import (
    Sockets,
    ask,
    audio,
    heartbeat,
    items,
    new_session,
    of_type,
    receive,
    run,
    session_item,
)

NOT_SENT_WAIT = 1.5  # how long a listener of another language is watched for audio it must not get


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


async def audio_messages(ws, count: int, kind: str = "audio", timeout: float = 10.0) -> list[dict]:
    """Messages until they carry `count` chunks (the fan-out merges the chunks of a batch into one message when
    it is behind: docs/protocols.md), their sequence numbers rising."""
    messages = []
    while sum(m.get("chunks", 1) for m in messages) < count:
        messages.append(await receive(ws, of_type(kind), timeout))
    numbers = [m["sequenceNumber"] for m in messages]
    assert numbers == sorted(set(numbers)), numbers
    return messages


def pcm(messages: list[dict]) -> bytes:
    return b"".join(base64.b64decode(m["audioData"]) for m in messages)


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
                assert got[-1]["sequenceNumber"] == 4
                assert pcm(got) == b"".join(f"pcm-{s}".encode() for s in range(5))  # all of it, in order
                assert {k: got[0][k] for k in ("sessionId", "language", "format", "sampleRate", "channels")} == {
                    "sessionId": session_id, "language": "en", "format": "pcm", "sampleRate": 16000, "channels": 1}
                assert isinstance(got[0]["timestamp"], int)
            await nothing_of_type(spanish, "audio")

    run(scenario())


# ------------------------------------------------------------------ the translated-audio input


def translated_stream(stack) -> str:
    return stack["outputs"]["TranslatedAudioStreamName"]


def put_translated(stack, session_id: str, language: str, sequence: int, pcm: bytes, **more) -> None:
    """One record as the pipeline writes it (docs/protocols.md "Translated audio input")."""
    record = {"sessionId": session_id, "language": language, "sequenceNumber": sequence,
              "audioData": base64.b64encode(pcm).decode(), "format": "pcm", "sampleRate": 16000, "channels": 1,
              "timestamp": 1700000000000 + sequence, **more}
    put_raw(stack, f"{session_id}#{language}", json.dumps(record).encode())


def put_raw(stack, partition_key: str, data: bytes) -> None:
    stack.aws("kinesis").put_record(StreamName=translated_stream(stack), PartitionKey=partition_key, Data=data)


def test_translated_audio_reaches_exactly_the_listeners_of_its_language_in_order(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            spanish = [await sockets.listener(session_id, targetLanguage="es") for _ in range(2)]
            french = await sockets.listener(session_id, targetLanguage="fr")
            english = await sockets.listener(session_id, targetLanguage="en")
            original = await sockets.listener(session_id)
            for ws in (*spanish, french, english, original):
                await heartbeat(ws)
            for sequence in range(6):
                await asyncio.to_thread(put_translated, stack, session_id, "es", sequence, f"es-{sequence}".encode(),
                                        transcript=f"hola {sequence}", duration=100)
            for ws in spanish:
                got = await audio_messages(ws, 6)
                assert got[-1]["sequenceNumber"] == 5
                assert pcm(got) == b"".join(f"es-{s}".encode() for s in range(6))
                assert got[0]["language"] == "es" and got[0]["sessionId"] == session_id
                assert got[0]["transcript"].startswith("hola 0") and got[0]["timestamp"] == 1700000000000
            for ws in (french, english, original):
                await nothing_of_type(ws, "audio")

    run(scenario())


def test_a_language_switch_moves_the_listener_to_the_new_languages_audio(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id, targetLanguage="es")
            await heartbeat(listener)
            await asyncio.to_thread(put_translated, stack, session_id, "es", 0, b"es-0")
            assert (await receive(listener, of_type("audio")))["language"] == "es"
            await ask(listener, {"action": "switchLanguage", "targetLanguage": "fr"}, of_type("languageSwitched"))
            await asyncio.to_thread(put_translated, stack, session_id, "es", 1, b"es-1")
            await asyncio.to_thread(put_translated, stack, session_id, "fr", 0, b"fr-0")
            got = await receive(listener, of_type("audio"))
            assert got["language"] == "fr" and base64.b64decode(got["audioData"]) == b"fr-0"
            await nothing_of_type(listener, "audio")  # es-1 went to the Spanish listeners: none now

    run(scenario())


def fanout_metric(stack, name: str) -> float:
    return sum(sum(line[name]) if isinstance(line[name], list) else line[name]
               for line in stack.log_lines("AudioFanoutFunction") if name in line and "_aws" in line)


@pytest.mark.local_only("reads the fan-out function's log")
def test_malformed_translated_records_are_skipped_and_counted_and_hold_nothing_back(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]
    partition = f"{session_id}#es"

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id, targetLanguage="es")
            await heartbeat(listener)
            before = fanout_metric(stack, "AudioRecordsMalformed")
            bad = [b"not json", b"[1, 2]",
                   json.dumps({"sessionId": session_id, "language": "xx", "sequenceNumber": 0, "audioData": "AAAA"}),
                   json.dumps({"sessionId": session_id, "language": "es", "sequenceNumber": -1, "audioData": "AAAA"}),
                   json.dumps({"sessionId": session_id, "language": "es", "sequenceNumber": 0, "audioData": "%%%"}),
                   json.dumps({"sessionId": "../etc", "language": "es", "sequenceNumber": 0, "audioData": "AAAA"}),
                   json.dumps({"sessionId": session_id, "language": "es", "sequenceNumber": 0, "audioData": "AAAA",
                               "sampleRate": 44100})]
            for data in bad:
                await asyncio.to_thread(put_raw, stack, partition, data if isinstance(data, bytes) else data.encode())
            await asyncio.to_thread(put_translated, stack, session_id, "es", 7, b"good")
            got = await receive(listener, of_type("audio"))
            assert got["sequenceNumber"] == 7 and base64.b64decode(got["audioData"]) == b"good"
            eventually(lambda: fanout_metric(stack, "AudioRecordsMalformed") - before >= len(bad), 10,
                       "the malformed records counted")
            assert fanout_metric(stack, "AudioRecordsMalformed") - before == len(bad)
            # Logged by a fixed reason, never by their content.
            log = stack.log("AudioFanoutFunction")
            assert "not json" not in log and "../etc" not in log

    run(scenario())


# ------------------------------------------------------------------ dialects, gone listeners


def test_each_dialects_listener_gets_audio_in_its_clients_shape(stack, http):
    from tests.e2e.test_referenced_audio import CHUNK_WAIT, fetched

    session_id = new_session(http, stack, sourceLanguage="en", access="public")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            # The old example listener: ?action=joinSession, dispatches on type "audioData".
            old = await sockets.open(action="joinSession", sessionId=session_id, targetLanguage="en")
            await receive(old, of_type("sessionJoined"))
            # The hybrid listener app: no role in the query, a token; plays stored chunks by URL (translatedAudio).
            hybrid = await sockets.open(sessionId=session_id, targetLanguage="en", token=stack.token("bob"))
            await heartbeat(hybrid)
            await speaker.send(json.dumps(audio(3, b"pcm-03")))
            old_got = await receive(old, of_type("audioData"))
            assert base64.b64decode(old_got["audioData"]) == b"pcm-03"
            assert {k: old_got[k] for k in ("sessionId", "targetLanguage", "sequenceNumber")} == {
                "sessionId": session_id, "targetLanguage": "en", "sequenceNumber": 3}
            hybrid_got = await receive(hybrid, of_type("translatedAudio"), CHUNK_WAIT)
            assert {k: hybrid_got[k] for k in ("targetLanguage", "sequenceNumber")} == {
                "targetLanguage": "en", "sequenceNumber": 3}
            assert await asyncio.to_thread(fetched, hybrid_got["url"]) == b"pcm-03"

    run(scenario())


@pytest.mark.local_only("writes a connection record for a socket that does not exist")
def test_a_gone_listener_is_removed_and_counted_off(stack, http):
    session_id = new_session(http, stack, sourceLanguage="en")["sessionId"]
    table, dynamodb = stack["tableName"], stack.aws("dynamodb")

    async def scenario():
        async with Sockets(stack) as sockets:
            listener = await sockets.listener(session_id, targetLanguage="es")
            await heartbeat(listener)
            # A listener whose socket went without a $disconnect (API Gateway's "best effort"), recorded a
            # minute ago and counted, as a join leaves it.
            gone = "Z29uZS1saXN0ZW5lcg="
            # Counted first, and told (the status broadcast posts the count to every socket, and would drop the
            # gone one itself if its record were already there): then the record, which only audio finds.
            dynamodb.update_item(TableName=table, Key={"pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": "META"}},
                                 UpdateExpression="ADD listenerCount :one, listeners_es :one",
                                 ExpressionAttributeValues={":one": {"N": "1"}})
            await receive(listener, of_type("status", listenerCount=2))
            dynamodb.put_item(TableName=table, Item={
                "pk": {"S": f"SESSION#{session_id}"}, "sk": {"S": f"CONN#{gone}"}, "connectionId": {"S": gone},
                "sessionId": {"S": session_id}, "role": {"S": "listener"}, "userId": {"S": "anonymous"},
                "targetLanguage": {"S": "es"}, "dialect": {"S": "native"}, "listening": {"S": f"{session_id}#es"},
                "connectedAt": {"N": str(int(time.time()) - 60)}, "expiresAt": {"N": str(int(time.time()) + 3600)}})
            await asyncio.to_thread(put_translated, stack, session_id, "es", 0, b"es-0")
            await receive(listener, of_type("audio"))  # the live one still hears it
            eventually(lambda: not items(stack, session_id, f"CONN#{gone}"), 10, "the gone listener's record dropped")
            # By a post's 410 (the local stack runs no sweep on its own), the fan-out's as a rule; on a loaded
            # machine a status broadcast still under way may post to it first, and drops it the same way. Each
            # summary line is written once its invocation ends, after the record is dropped.
            eventually(lambda: any(line.get("gone") for function in ("AudioFanoutFunction", "StatusBroadcastFunction")
                                   for line in stack.log_lines(function) if line.get("message") == "request"),
                       10, "a summary of the 410")
            item = session_item(stack, session_id)
            assert int(item["listenerCount"]["N"]) == 1 and int(item["listeners_es"]["N"]) == 1

    run(scenario())


# ------------------------------------------------------------------ the stand-in pipeline


@pytest.fixture(scope="module")
def stand_in_stack(tmp_path_factory):
    """A stack of its own with the stand-in pipeline feeding the floor back as Spanish."""
    state_dir = tmp_path_factory.mktemp("stand-in-stack")
    with running_stack(state_dir, "--stand-in-pipeline", "es") as (info, process):
        yield LocalStackHandle(info, state_dir, process)


@pytest.mark.local_only("starts a local stack with the stand-in pipeline")
def test_the_stand_in_pipeline_feeds_the_floor_back_as_the_target_language_end_to_end(stand_in_stack):
    stack = stand_in_stack
    assert stack["standInPipeline"] == "es"
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session_id = new_session(client, stack, sourceLanguage="en")["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            english = await sockets.listener(session_id, targetLanguage="en")
            spanish = await sockets.listener(session_id, targetLanguage="es")
            french = await sockets.listener(session_id, targetLanguage="fr")
            for ws in (english, spanish, french):
                await heartbeat(ws)
            for seq in range(3):
                await speaker.send(json.dumps(audio(seq, f"pcm-{seq}".encode())))
            got = await audio_messages(spanish, 3)
            assert got[-1]["sequenceNumber"] == 2 and {m["language"] for m in got} == {"es"}
            assert pcm(got) == b"".join(f"pcm-{s}".encode() for s in range(3))
            assert "not a translation" in got[0]["transcript"]  # labelled: it is the original audio
            assert {m["language"] for m in await audio_messages(english, 3)} == {"en"}
            await nothing_of_type(french, "audio")

    run(scenario())
