"""Headless Chromium driven by Playwright against the local stack's console.

The browser is the machine's (Debian's `chromium` package; `make test` installs it when missing, as root) or the one
CHROMIUM_PATH names; Playwright never downloads one here. Without a browser, or without a built console,
every test here fails with one line saying what to run: never a silent skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from local_stack.console import CONSOLE_DIR
from local_stack.launcher import LaunchError, running_stack
from tests.e2e.conftest import LocalStackHandle
from tests.support.mouth_to_ear import chromium_args, find_chromium, write_bursts

INSTALL_HINT = "no Chromium found: install one with `apt-get install -y chromium` (as root), or set CHROMIUM_PATH"
# Two listeners per session (the source language's and a translation's), so a third join is refused as "full".
MAX_LISTENERS = 2
STAND_IN_LANGUAGE = "es"


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


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
        # The stand-in pipeline feeds the speaker's audio back as Spanish: a second language to hear.
        with running_stack(state_dir, "--stand-in-pipeline", STAND_IN_LANGUAGE, "--parameter-overrides",
                           f"MaxListenersPerSession={MAX_LISTENERS}", "MaxLiveSessionsPerUser=1000") as (info, process):
            yield LocalStackHandle(info, state_dir, process)
    except LaunchError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="package")  # stopped before other packages: its event loop blocks asyncio.run
def browser(tmp_path_factory, chromium_path):
    from playwright.sync_api import sync_playwright

    # The fake microphone plays 440 Hz bursts at 48 kHz (the console must resample them); the tests find
    # them again in the PCM that reaches Kinesis and in what the listener pages play.
    tone = tmp_path_factory.mktemp("microphone") / "bursts.wav"
    write_bursts(tone)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=chromium_args(tone))
        try:
            yield browser
        finally:
            browser.close()
