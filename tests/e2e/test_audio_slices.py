"""A crowd's audio in slices end to end (docs/architecture.md "Audio to listeners"): a stack of its own whose
threshold is low (AudioSliceThreshold=3, AudioSliceListeners=2), so that a dozen real WebSocket listeners are a
crowd; the speaker's chunks go through the audio stream to the fan-out, which hands them to the slice stream,
whose mapping runs AudioSliceFunction under its own role (the local stack enforces IAM). Every listener gets every
chunk, in order."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from local_stack.launcher import running_stack
from tests.e2e.conftest import LocalStackHandle, eventually
from tests.e2e.test_listener_audio import audio_messages, nothing_of_type, pcm
from tests.e2e.ws_helpers import Sockets, audio, heartbeat, new_session, run

LISTENERS = 12  # above the threshold of 3: 8 slices of about 2 (slices.slice_count)
CHUNKS = 20


@pytest.fixture(scope="module")
def sliced_stack(tmp_path_factory):
    state_dir = tmp_path_factory.mktemp("sliced-stack")
    with running_stack(state_dir, "--parameter-overrides", "AudioSliceThreshold=3", "AudioSliceListeners=2") as (
            info, process):
        yield LocalStackHandle(info, state_dir, process)


@pytest.mark.local_only("starts a local stack with a low slice threshold")
def test_a_crowd_is_posted_by_the_slice_workers_every_listener_gets_every_chunk_in_order(sliced_stack):
    stack = sliced_stack
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        session_id = new_session(client, stack, sourceLanguage="en")["sessionId"]
    sent = [f"chunk-{seq:02d}".encode() * 10 for seq in range(CHUNKS)]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            crowd = await sockets.listeners(session_id, LISTENERS - 2, targetLanguage="en")
            crowd += await sockets.listeners(session_id, 2)  # the original: in the floor's slices too
            spanish = await sockets.listener(session_id, targetLanguage="es")
            for ws in (*crowd, spanish):
                await heartbeat(ws)
            for seq, chunk in enumerate(sent):
                await speaker.send(json.dumps(audio(seq, chunk)))
                await asyncio.sleep(0.1)  # a speaker's pace: 10 chunks a second
            received = await asyncio.gather(*(audio_messages(ws, CHUNKS, timeout=30) for ws in crowd))
            for messages in received:  # audio_messages checks the sequence numbers rise
                assert pcm(messages) == b"".join(sent)
                assert messages[-1]["sequenceNumber"] == CHUNKS - 1
            await nothing_of_type(spanish, "audio")

    run(scenario())
    # The crowd went through the workers: the fan-out put slice records and posted none of it itself.
    fanout = [line for line in stack.log_lines("AudioFanoutFunction") if line.get("message") == "request"]
    assert sum(line.get("sliced", 0) for line in fanout) >= CHUNKS
    assert sum(line.get("sent", 0) for line in fanout) == 0
    eventually(lambda: sum(line.get("sent", 0) for line in stack.log_lines("AudioSliceFunction")
                           if line.get("message") == "request") >= LISTENERS, what="the workers' posts")
    assert not [line for line in stack.log_lines("AudioSliceFunction") if line.get("level") == "ERROR"]
