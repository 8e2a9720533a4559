"""Headless Chromium driven by Playwright against the local stack's console.

The browser is the machine's (Debian's `chromium` package; `make test` installs it when missing, as root) or the one
CHROMIUM_PATH names; Playwright never downloads one here. Without a browser, or without a built console,
every test here fails with one line saying what to run: never a silent skip.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from local_stack.console import CONSOLE_DIR
from local_stack.launcher import LaunchError, running_stack
from tests.e2e.conftest import LocalStackHandle
from tests.support.audio import write_tone

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
        # alice creates a session in most tests and ends few: the per-user cap is tested elsewhere.
        with running_stack(state_dir, "--parameter-overrides", f"MaxListenersPerSession={MAX_LISTENERS}",
                           "MaxLiveSessionsPerUser=1000") as (info, process):
            yield LocalStackHandle(info, state_dir, process)
    except LaunchError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="package")  # stopped before other packages: its event loop blocks asyncio.run
def browser(tmp_path_factory, chromium_path):
    from playwright.sync_api import sync_playwright

    tone = tmp_path_factory.mktemp("microphone") / "tone.wav"
    write_tone(tone, 5.0, rate=WAV_RATE, hz=TONE_HZ, amplitude=0.5 * 32767)  # the console must resample it
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
