"""start_broadcast: create over HTTP, then connect as the speaker."""

from __future__ import annotations

import httpx
import pytest
from broadcast_client import BroadcastError, ConnectionCallbacks, SessionHttpService, start_broadcast

from tests.client.fakes import (
    FakeGateway,
    FakeTimers,
    FakeTokens,
    Script,
    async_test,
    error_json,
    offline,
    session_json,
)

BASE = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"


def http(script: Script) -> SessionHttpService:
    async def no_wait(_: float) -> None:
        return None

    return SessionHttpService(BASE, token_provider=FakeTokens("token-1"), transport=script.transport,
                              sleep=no_wait, random=lambda: 0.0)


@async_test
async def test_start_broadcast_creates_then_connects_and_end_ends_it():
    script = Script(httpx.Response(201, json=session_json("bright-star-101")), httpx.Response(204))
    async with FakeGateway() as gw:
        broadcast = await start_broadcast(http(script), gw.url, FakeTokens("token-1"), source_language="es",
                                          quality_tier="premium",
                                          callbacks=ConnectionCallbacks(sleep=FakeTimers().sleep))
        await broadcast.live.send_audio(b"hola")
        await broadcast.end()
        await gw.wait_for(lambda: len(gw.seqs()) == 1)

        assert broadcast.session_id == "bright-star-101"
        assert gw.handshakes == [{"sessionId": "bright-star-101", "role": "speaker", "token": "token-1"}]
        assert gw.audio() == [(0, b"hola")]
        assert script.calls() == ["POST /dev/sessions", "DELETE /dev/sessions/bright-star-101"]
        assert not broadcast.live.connected


@async_test
async def test_a_failed_connection_ends_the_new_session_again():
    script = Script(httpx.Response(201, json=session_json("bright-star-101")), httpx.Response(204))
    async with FakeGateway() as gw:
        gw.refuse = lambda query: 403
        with pytest.raises(BroadcastError) as caught:
            await start_broadcast(http(script), gw.url, FakeTokens("token-1"), source_language="en")

    assert script.calls() == ["POST /dev/sessions", "DELETE /dev/sessions/bright-star-101"]
    assert "bright-star-101" in str(caught.value) and "ended again" in str(caught.value)
    assert "HTTP 403" in str(caught.value)


@async_test
async def test_an_unreachable_service_is_explained_and_nothing_stays_queued():
    service = http(Script(*[offline()] * 4))
    with pytest.raises(BroadcastError, match="unreachable"):
        await start_broadcast(service, "ws://127.0.0.1:9/dev", FakeTokens("t"), source_language="en")
    assert service.pending == ()


@async_test
async def test_a_refused_create_names_the_step():
    service = http(Script(httpx.Response(400, json=error_json("VALIDATION_ERROR", "sourceLanguage: bad"))))
    with pytest.raises(BroadcastError, match="Cannot create the session: sourceLanguage: bad"):
        await start_broadcast(service, "ws://127.0.0.1:9/dev", FakeTokens("t"), source_language="xx")
