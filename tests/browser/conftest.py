"""Headless Chromium driven by Playwright against the local stack's console.

The browser is the machine's (Debian's `chromium` package; `.ci/run` installs it when missing) or the one
CHROMIUM_PATH names; Playwright never downloads one here. Without a browser, or without a built console,
every test here fails with one line saying what to run: never a silent skip.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest

from local_stack.console import CONSOLE_DIR
from local_stack.launcher import LaunchError, running_stack
from tests.e2e.conftest import LocalStackHandle

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "no Chromium found: install one with `apt-get install -y chromium` (as root), or set CHROMIUM_PATH"
# The fake microphone plays this tone; the tests find it again in the PCM that reaches Kinesis.
TONE_HZ = 440.0
WAV_RATE = 48_000
# One listener per session, so a second join is refused as "full".
MAX_LISTENERS = 1


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


def find_chromium() -> str | None:
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def write_tone(path: Path, seconds: float = 5.0) -> Path:
    """A mono 16-bit WAV at 48 kHz: the console must resample it to 16 kHz."""
    frames = b"".join(struct.pack("<h", round(0.5 * 32767 * math.sin(2 * math.pi * TONE_HZ * n / WAV_RATE)))
                      for n in range(int(WAV_RATE * seconds)))
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(WAV_RATE)
        out.writeframes(frames)
    return path


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    if not (CONSOLE_DIR / "index.html").is_file():
        pytest.fail("the console is not built: run `make console`", pytrace=False)
    return path


@pytest.fixture(scope="package")
def console_stack(tmp_path_factory, chromium_path) -> LocalStackHandle:
    state_dir = tmp_path_factory.mktemp("console-stack")
    try:
        with running_stack(state_dir, "--parameter-overrides", f"MaxListenersPerSession={MAX_LISTENERS}") as (
                info, process):
            yield LocalStackHandle(info, state_dir, process)
    except LaunchError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="package")  # stopped before other packages: its event loop blocks asyncio.run
def browser(tmp_path_factory, chromium_path):
    from playwright.sync_api import sync_playwright

    tone = write_tone(tmp_path_factory.mktemp("microphone") / "tone.wav")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone}", "--autoplay-policy=no-user-gesture-required",
        ])
        try:
            yield browser
        finally:
            browser.close()
