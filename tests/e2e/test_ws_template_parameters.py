"""The WebSocket rules a template parameter changes, against a second local stack started for this module
(MaxListenersPerSession=3, LegacyWebSocketSessionCreation=disabled, AllowAnonymousListeners=false,
MaxAudioBytes=2048): the listener cap holds when listeners race for the last places; anonymous listeners are
refused; legacy creation is refused, in the new vocabulary and the old; audio over MaxAudioBytes is refused
and the connection stays open.
"""

from __future__ import annotations

import asyncio
import base64
import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.e2e.conftest import DEPLOYED_STACK, SUITE_SESSION_CAP, StackInBackground, eventually
from tests.e2e.ws_helpers import (
    OLD_ACTION_FUNCTIONS,
    Sockets,
    ask,
    audio,
    audio_chunk,
    error_for,
    eventually_async,
    get_session,
    heartbeat,
    items,
    legacy_messages_counted,
    new_session,
    of_type,
    open_ws,
    refusal_reasons,
    refused,
    run,
    seqs,
)


@pytest.fixture(scope="module", autouse=True)
def _strict_stack_in_background(request, tmp_path_factory):
    """Starts the strict stack with the module's first test, if any selected test needs it."""
    module = request.node
    if DEPLOYED_STACK or not any("strict_stack" in getattr(item, "fixturenames", ()) for item in request.session.items
               if item.module is module.obj):
        yield None
        return
    starter = StackInBackground(
        tmp_path_factory.mktemp("strict-stack"), "--parameter-overrides", "MaxListenersPerSession=3",
        "LegacyWebSocketSessionCreation=disabled", "AllowAnonymousListeners=false", "MaxAudioBytes=2048",
        f"MaxLiveSessionsPerUser={SUITE_SESSION_CAP}")
    yield starter
    starter.stop()


@pytest.fixture(scope="module")
def strict_stack(_strict_stack_in_background):
    """Listener cap 3, legacy creation disabled, no anonymous listeners, 2 KB audio chunks (the session cap of
    the shared stack)."""
    return _strict_stack_in_background.wait()


@pytest.fixture(scope="module")
def strict_http(strict_stack):
    with httpx.Client(base_url=strict_stack.url, timeout=30) as client:
        yield client


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_a_full_session_refuses_listeners_even_when_they_race_for_the_last_places(strict_stack, strict_http):
    stack, http = strict_stack, strict_http
    session_id = new_session(http, stack)["sessionId"]
    token = stack.token("bob")

    async def attempt():
        try:
            ws = await open_ws(stack, sessionId=session_id, role="listener", token=token)
        except InvalidStatus as exc:
            return exc.response.status_code
        return ws

    async def scenario():
        async with Sockets(stack) as sockets:
            first = await sockets.listener(session_id, token=token)
            # Six race for the two places left: the cap holds at $connect, atomically.
            outcomes = await asyncio.gather(*(attempt() for _ in range(6)))
            admitted = [o for o in outcomes if not isinstance(o, int)]
            sockets.opened += admitted
            assert sorted(o for o in outcomes if isinstance(o, int)) == [403] * 4 and len(admitted) == 2
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            before = len(refusal_reasons(stack))
            assert await refused(stack, sessionId=session_id, role="listener", token=token) == 403
            assert refusal_reasons(stack)[before:] == ["SESSION_FULL"]
            # Speakers do not count against the cap.
            speaker = await sockets.speaker(session_id)
            await heartbeat(speaker)
            # A place freed is a place taken.
            await first.close()
            await eventually_async(lambda: get_session(http, stack, session_id)["listenerCount"] == 2)
            await heartbeat(await sockets.listener(session_id, token=token))
            assert get_session(http, stack, session_id)["listenerCount"] == 3
            assert len(await asyncio.to_thread(items, stack, session_id, "CONN#")) == 4

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_anonymous_listeners_are_refused_when_not_allowed(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        before = len(refusal_reasons(stack))
        assert await refused(stack, sessionId=session_id, role="listener") == 401
        assert refusal_reasons(stack)[before:] == ["UNAUTHORIZED"]
        async with Sockets(stack) as sockets:
            await heartbeat(await sockets.listener(session_id, token=stack.token("bob")))

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_legacy_session_creation_can_be_switched_off(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        before = len(refusal_reasons(stack))
        assert await refused(stack, role="speaker", token=stack.token("alice")) == 403
        assert refusal_reasons(stack)[before:] == ["LEGACY_CREATION_DISABLED"]
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            assert await error_for(speaker, {"action": "createSession", "sourceLanguage": "en"}) == \
                "LEGACY_CREATION_DISABLED"
            await heartbeat(speaker)

    run(scenario())


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_the_old_vocabulary_answers_legacy_creation_disabled_when_switched_off(strict_stack, strict_http):
    stack, http = strict_stack, strict_http
    session_id = new_session(http, stack)["sessionId"]
    counted_before = legacy_messages_counted(stack)

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            for message in ({"action": "createSession", "sourceLanguage": "en", "partialResults": True,
                             "minStability": 0.85, "maxBufferTimeout": 5.0},
                            audio_chunk(0, session_id), {"action": "pauseBroadcast"}, {"action": "resumeBroadcast"}):
                reply = await ask(speaker, message, of_type("error"))
                assert reply["code"] == "LEGACY_CREATION_DISABLED", reply
                assert "POST /sessions" in reply["message"] or "sendAudio" in reply["message"]
            # The new vocabulary works on the same socket.
            await speaker.send(json.dumps(audio(1)))
            await heartbeat(speaker)

    run(scenario())
    assert seqs(stack, session_id) == [1]
    assert get_session(http, stack, session_id)["status"] == "active"
    expected = dict.fromkeys(OLD_ACTION_FUNCTIONS, 1)
    eventually(lambda: {action: legacy_messages_counted(stack)[action] - counted_before[action]
                        for action in expected} == expected, what="refused old messages counted")


@pytest.mark.local_only("starts a second local stack with other parameters")
def test_audio_over_max_audio_bytes_is_refused_and_the_connection_stays_open(strict_stack, strict_http):
    stack = strict_stack
    session_id = new_session(strict_http, stack)["sessionId"]

    async def scenario():
        async with Sockets(stack) as sockets:
            speaker = await sockets.speaker(session_id)
            assert await error_for(speaker, audio(0, b"\x07" * 2049)) == "AUDIO_TOO_LARGE"
            assert await error_for(speaker, audio(1, b"\x07" * 9000)) == "AUDIO_TOO_LARGE"
            await speaker.send(json.dumps(audio(2, b"\x07" * 2048)))  # exactly the limit
            await heartbeat(speaker)

    run(scenario())
    records = stack.audio_records(session_id)
    assert [r["seq"] for r in records] == [2]
    assert len(base64.b64decode(records[0]["audio"])) == 2048
