"""Listening with the client library and with the CLI: both follow the status and the listener count until the
session is deleted, which ends both."""

from __future__ import annotations

import asyncio

import pytest
from broadcast_client import WebSocketClient

from tests.e2e.client.conftest import TIMEOUT, cli_command, cli_env

pytestmark = pytest.mark.local_only("the client's --local configuration reads the local stack's stack.json")


class Output:
    """Lines of a subprocess's stdout, read as they come."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self.lines: list[str] = []

    async def expect(self, text: str, timeout: float = TIMEOUT) -> str:
        async def read() -> str:
            while True:
                raw = await self._stream.readline()
                if not raw:
                    raise AssertionError(f"stdout ended before {text!r}: {self.lines}")
                self.lines.append(raw.decode().rstrip("\n"))
                if text in self.lines[-1]:
                    return self.lines[-1]
        try:
            return await asyncio.wait_for(read(), timeout)
        except TimeoutError:
            raise AssertionError(f"no {text!r} within {timeout}s; stdout so far: {self.lines}") from None


async def next_status(messages, predicate) -> dict:
    """The next status message that satisfies ``predicate`` (stream batching may skip intermediate ones)."""
    async def find() -> dict:
        async for message in messages:
            assert message["type"] != "sessionEnded", message
            if message["type"] == "status" and predicate(message):
                return message
        raise AssertionError("messages() ended")
    return await asyncio.wait_for(find(), TIMEOUT)


def test_listeners_follow_status_and_listener_count_until_the_session_is_deleted(stack, stack_json, config, tmp_path):
    """A library listener (anonymous) and the CLI listener (bob) on alice's session: both see the
    listener count and the speaker's PATCH; the session's DELETE ends both."""

    async def scenario() -> None:
        async with config.http_service(config.token_provider("alice")) as http:
            session = await http.create_session("en")
            sid = session.session_id
            with (tmp_path / "listener.err").open("wb") as stderr:
                process = await asyncio.create_subprocess_exec(
                    *cli_command("listener", sid, "--language", "es", "--username", "bob", "--local", str(stack_json)),
                    cwd=tmp_path, env=cli_env(), stdout=asyncio.subprocess.PIPE, stderr=stderr)
            try:
                cli = Output(process.stdout)
                await cli.expect(f"Listening to session {sid} in es.")

                async with WebSocketClient(config.websocket_url, sid, role="listener", target_language="fr",
                                           join_key=session.join_key) as live:
                    messages = live.messages()
                    joined = await next_status(messages, lambda m: m["listenerCount"] == 2)
                    assert joined == {"type": "status", "sessionId": sid, "status": "active", "listenerCount": 2,
                                      "listenersByLanguage": {"es": 1, "fr": 1}, "speakerConnected": False}
                    await cli.expect("active, 2 listener(s)")

                    paused = await http.update_session(sid, status="paused")
                    assert (paused.status, paused.listener_count) == ("paused", 2)
                    status = await next_status(messages, lambda m: m["status"] == "paused")
                    assert status == {"type": "status", "sessionId": sid, "status": "paused", "listenerCount": 2,
                                      "listenersByLanguage": {"es": 1, "fr": 1}, "speakerConnected": False}
                    await cli.expect("paused, 2 listener(s)")

                    await http.delete_session(sid)
                    rest = await asyncio.wait_for(_collect(messages), TIMEOUT)  # ends after sessionEnded
                    assert [m["type"] for m in rest][-1:] == ["sessionEnded"], rest
                    assert rest[-1]["sessionId"] == sid
                    assert live.session_ended

                await cli.expect(f"Session {sid} ended.")
                assert await asyncio.wait_for(process.wait(), TIMEOUT) == 0, (tmp_path / "listener.err").read_text()
            finally:
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            assert (await http.get_session(sid)).status == "ended"

    asyncio.run(scenario())


async def _collect(messages) -> list[dict]:
    return [message async for message in messages]
