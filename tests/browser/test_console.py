"""The console in a real browser: a speaker goes live from Chromium's fake microphone, a listener in
another browser context follows the session, and the audio reaches Kinesis as 16 kHz 16-bit mono PCM."""

from __future__ import annotations

import base64
import itertools
import os
import re
import struct
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.conftest import eventually

from .conftest import MAX_LISTENERS, TONE_HZ

# docs/console.md's screenshots; a run refreshes them with UPDATE_SCREENSHOTS=1 (otherwise they go to a temporary
# folder, so a test run leaves the work tree as it found it).
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCREENSHOTS = DOCS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "console-screenshots"
CHUNK_BYTES = 3200  # 100 ms of 16 kHz 16-bit mono
SAMPLE_RATE = 16_000


def dominant_frequency(pcm: bytes) -> float:
    """From the zero crossings of little-endian int16 samples at 16 kHz."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    crossings = sum(1 for a, b in itertools.pairwise(samples) if (a < 0) != (b < 0))
    return crossings / 2 / (len(samples) / SAMPLE_RATE)


def sign_in(page, stack, name: str) -> None:
    user = stack.user(name)
    page.fill("#username", user["username"])
    page.fill("#password", user["password"])
    page.click("#sign-in")


def see(page, selector: str, text: str, timeout: float = 15_000) -> None:
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_have_text(text, timeout=timeout)


def create_and_go_live(page, stack, language: str = "en", tier: str = "standard") -> str:
    """Signs alice in on the speaker page, creates a session, goes live; returns the session ID."""
    page.goto(stack["consoleUrl"] + "speaker.html")
    sign_in(page, stack, "alice")
    page.wait_for_selector("#create-section", state="visible")
    page.select_option("#language", language)
    page.select_option("#tier", tier)
    page.click("#create")
    page.wait_for_selector("#session-section", state="visible")
    session_id = page.inner_text("#session-id")
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", session_id)
    page.click("#go-live")
    see(page, "#connection", "connected")
    return session_id


def chunks_sent(page) -> int:
    return int(page.inner_text("#chunks"))


@pytest.fixture
def pages(browser):
    speaker_context, listener_context = browser.new_context(), browser.new_context()
    yield speaker_context.new_page(), listener_context.new_page()
    speaker_context.close()
    listener_context.close()


def test_speaker_goes_live_and_a_listener_follows_until_the_end(console_stack, browser, pages):
    stack = console_stack
    speaker, listener = pages
    session_id = create_and_go_live(speaker, stack, "fr", "premium")
    link = speaker.get_attribute("#listener-link", "href")
    # The link carries the session's join key: the anonymous listener below needs it.
    key = httpx.get(f"{stack.url}/sessions/{session_id}", headers=stack.auth("alice")).json()["joinKey"]
    assert link == f"{stack['consoleUrl']}listener.html?session={session_id}&key={key}"
    eventually(lambda: chunks_sent(speaker) >= 20, 20, "two seconds of audio sent")

    sockets = []
    listener.on("websocket", lambda socket: sockets.append(socket))
    listener.goto(link)  # joins from the link, anonymously
    see(listener, "#connection", "connected")
    see(listener, "#listener-count", "1")
    see(listener, "#status", "active")
    see(speaker, "#listener-count", "1")
    assert len(sockets) == 1 and not sockets[0].is_closed()
    eventually(lambda: speaker.evaluate("document.getElementById('level').value") > 0.05, 10,
               "the level meter moves")

    SCREENSHOTS.mkdir(exist_ok=True)
    for page, name in ((speaker, "console-speaker.png"), (listener, "console-listener.png")):
        assert page.screenshot(path=str(SCREENSHOTS / name), full_page=True)[:8] == b"\x89PNG\r\n\x1a\n"

    speaker.click("#pause")
    see(listener, "#status", "paused")
    see(speaker, "#status", "paused")
    speaker.click("#resume")
    see(listener, "#status", "active")
    sent_before = chunks_sent(speaker)
    eventually(lambda: chunks_sent(speaker) >= sent_before + 5, 10, "audio after the resume")

    speaker.click("#end")
    see(listener, "#status", "ended")
    see(listener, "#notice", "The session has ended.")
    see(listener, "#connection", "closed (session ended)")
    eventually(sockets[0].is_closed, 10, "the listener's socket closes")
    see(speaker, "#status", "ended")

    sent = chunks_sent(speaker)
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len(r) >= sent and r, 15,
                         "every chunk in Kinesis")
    assert [r["seq"] for r in records] == list(range(sent)), "every chunk once, in order, no gap"
    assert {(r["sourceLanguage"], r["qualityTier"], r["partitionKey"]) for r in records} == {
        ("fr", "premium", session_id)}
    audio = [base64.b64decode(r["audio"]) for r in records]
    assert {len(chunk) for chunk in audio} == {CHUNK_BYTES}
    # The 48 kHz tone comes back at its pitch only if the wire is 16 kHz, 16-bit, little-endian, mono.
    pitch = dominant_frequency(b"".join(audio[5:-5]))
    assert abs(pitch - TONE_HZ) < TONE_HZ * 0.03, f"{pitch:.0f} Hz"


def test_the_speaker_reconnects_without_losing_audio(console_stack, pages):
    stack = console_stack
    speaker, _ = pages
    session_id = create_and_go_live(speaker, stack)
    eventually(lambda: chunks_sent(speaker) >= 10, 20, "a second of audio sent")

    # The server drops the speaker's socket (as API Gateway does at its limits): the page reconnects.
    connections = stack.aws("dynamodb").query(
        TableName=stack["tableName"], KeyConditionExpression="pk = :pk AND begins_with(sk, :conn)",
        ExpressionAttributeValues={":pk": {"S": f"SESSION#{session_id}"}, ":conn": {"S": "CONN#"}})["Items"]
    (speaker_connection,) = [c["connectionId"]["S"] for c in connections if c["role"]["S"] == "speaker"]
    # Connection IDs are base64: a "/" or "+" in one must be escaped in the path, as botocore does.
    dropped = httpx.delete(f"{stack['managementApiUrl']}/@connections/{quote(speaker_connection, safe='')}")
    assert dropped.status_code == 204
    see(speaker, "#reconnects", "1")
    see(speaker, "#connection", "connected")
    after_drop = chunks_sent(speaker)
    eventually(lambda: chunks_sent(speaker) >= after_drop + 10, 20, "audio after the reconnection")
    speaker.click("#end")
    see(speaker, "#status", "ended")

    sent = chunks_sent(speaker)
    records = eventually(lambda: (r := stack.audio_records(session_id)) and len({x["seq"] for x in r}) >= sent and r,
                         15, "every chunk in Kinesis")
    # At least once: what the dropped socket had not confirmed may arrive twice, never out of order or missing.
    first_seen = list(dict.fromkeys(r["seq"] for r in records))
    assert first_seen == list(range(sent))
    assert len(records) - sent <= 60, "repeats are bounded by the confirmation interval"


def test_a_refused_join_is_explained(console_stack, browser):
    stack = console_stack
    anonymous, signed_in = browser.new_context(), browser.new_context()
    try:
        # Anonymous: the handshake's refusal has no readable reason, so the page lists the three.
        page = anonymous.new_page()
        page.goto(stack["consoleUrl"] + "listener.html?session=silent-owl-999")
        see(page, "#notice", "Session silent-owl-999 refused the join: it does not exist, has ended, or is "
                             "full, or it needs its speaker's listener link (with its key). Sign in to find out "
                             "which.")

        # Signed in: the page reads the session and says which.
        page = signed_in.new_page()
        page.goto(stack["consoleUrl"] + "listener.html")
        page.click("#sign-in-summary")
        sign_in(page, stack, "bob")
        see(page, "#sign-in-summary", f"Signed in as {stack.user('bob')['username']}")

        def join(session_id: str) -> None:
            page.fill("#session-input", session_id)
            page.click("#join")

        join("silent-owl-999")
        see(page, "#notice", "There is no session silent-owl-999: check the ID (sessions expire).")

        made = httpx.post(f"{stack.url}/sessions", headers=stack.auth("alice"), json={"sourceLanguage": "en"}).json()
        created = made["sessionId"]
        first = anonymous.new_page()
        first.goto(f"{stack['consoleUrl']}listener.html?session={created}&key={made['joinKey']}")
        see(first, "#listener-count", str(MAX_LISTENERS))
        join(created)
        see(page, "#notice", f"Session {created} is full: it has {MAX_LISTENERS} listeners, the most it admits.")

        assert httpx.delete(f"{stack.url}/sessions/{created}", headers=stack.auth("alice")).status_code == 204
        see(first, "#status", "ended")
        join(created)
        see(page, "#notice", f"Session {created} has ended.")
    finally:
        anonymous.close()
        signed_in.close()
