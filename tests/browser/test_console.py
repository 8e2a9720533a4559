"""The console in a real browser: a speaker goes live from Chromium's fake microphone, a listener in
another browser context follows the session, and the audio reaches Kinesis as 16 kHz 16-bit mono PCM."""

from __future__ import annotations

import base64
import itertools
import re
import struct
from pathlib import Path

import pytest

from tests.e2e.conftest import eventually

from .conftest import MAX_LISTENERS, TONE_HZ

DOCS = Path(__file__).resolve().parents[2] / "docs"
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


@pytest.fixture
def pages(browser):
    speaker_context, listener_context = browser.new_context(), browser.new_context()
    yield speaker_context.new_page(), listener_context.new_page()
    speaker_context.close()
    listener_context.close()


def test_speaker_goes_live_and_a_listener_follows_until_the_end(console_stack, browser, pages):
    stack = console_stack
    speaker, listener = pages
    speaker.goto(stack["consoleUrl"] + "speaker.html")
    sign_in(speaker, stack, "alice")
    speaker.wait_for_selector("#create-section", state="visible")
    speaker.select_option("#language", "fr")
    speaker.select_option("#tier", "premium")
    speaker.click("#create")
    speaker.wait_for_selector("#session-section", state="visible")
    session_id = speaker.inner_text("#session-id")
    assert re.fullmatch(r"[a-z]+-[a-z]+-\d+", session_id)
    link = speaker.get_attribute("#listener-link", "href")
    assert link == f"{stack['consoleUrl']}listener.html?session={session_id}"

    speaker.click("#go-live")
    see(speaker, "#connection", "connected")
    eventually(lambda: int(speaker.inner_text("#chunks")) >= 20, 20, "two seconds of audio sent")

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

    DOCS.mkdir(exist_ok=True)
    speaker.screenshot(path=str(DOCS / "console-speaker.png"), full_page=True)
    listener.screenshot(path=str(DOCS / "console-listener.png"), full_page=True)

    speaker.click("#pause")
    see(listener, "#status", "paused")
    see(speaker, "#status", "paused")
    speaker.click("#resume")
    see(listener, "#status", "active")
    sent_before = int(speaker.inner_text("#chunks"))
    eventually(lambda: int(speaker.inner_text("#chunks")) >= sent_before + 5, 10, "audio after the resume")

    speaker.click("#end")
    see(listener, "#status", "ended")
    see(listener, "#notice", "The session has ended.")
    see(listener, "#connection", "closed (session ended)")
    eventually(sockets[0].is_closed, 10, "the listener's socket closes")
    see(speaker, "#status", "ended")

    sent = int(speaker.inner_text("#chunks"))
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


def test_a_refused_join_is_explained(console_stack, browser):
    stack = console_stack
    anonymous, signed_in = browser.new_context(), browser.new_context()
    try:
        # Anonymous: the handshake's refusal has no readable reason, so the page lists the three.
        page = anonymous.new_page()
        page.goto(stack["consoleUrl"] + "listener.html?session=silent-owl-999")
        see(page, "#notice", "Session silent-owl-999 refused the join: it does not exist, has ended, or is "
                             "full. Sign in to find out which.")

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

        import httpx

        created = httpx.post(f"{stack.url}/sessions", headers=stack.auth("alice"),
                             json={"sourceLanguage": "en"}).json()["sessionId"]
        first = anonymous.new_page()
        first.goto(f"{stack['consoleUrl']}listener.html?session={created}")
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
