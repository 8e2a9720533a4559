"""Security suites against the local stack (the `stack` fixture comes from tests/e2e/conftest.py).

Each suite counts the cases it tries; the totals are printed at the end of the run:
    security/jwt: 190 cases tried, 190 passed
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager

import httpx
import pytest

from .tally import TALLY


def pytest_terminal_summary(terminalreporter):
    if not TALLY.counts:
        return
    terminalreporter.section("security suites")
    for suite, (tried, passed) in sorted(TALLY.counts.items()):
        terminalreporter.write_line(f"{suite}: {tried} cases tried, {passed} passed")
        for failure in TALLY.failures[suite][:10]:
            terminalreporter.write_line(f"    FAILED {failure}")


@pytest.fixture
def tally():
    return TALLY


@contextmanager
def suite(name: str):
    """Runs a block of checks; fails the test if any check in it failed."""
    since = TALLY.mark(name)
    yield lambda ok, what: TALLY.check(name, ok, what)
    failures = TALLY.new_failures(name, since)
    assert not failures, f"{len(failures)} failed: " + "; ".join(failures[:20])


@pytest.fixture(scope="module")
def api(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def new_session(api, stack, user: str = "alice", **body) -> dict:
    r = api.post("/sessions", headers=stack.auth(user), json={"sourceLanguage": "en", **body})
    assert r.status_code == 201, r.text
    return r.json()


def ws_url(stack, **query) -> str:
    from urllib.parse import urlencode
    return f"{stack['webSocketUrl']}?{urlencode({k: v for k, v in query.items() if v is not None})}"


def is_error_shape(body) -> bool:
    return (isinstance(body, dict) and set(body) == {"error"} and isinstance(body["error"], dict)
            and set(body["error"]) == {"code", "message", "requestId"}
            and all(isinstance(v, str) for v in body["error"].values()))


__all__ = ["is_error_shape", "json", "new_session", "suite", "time", "uuid", "ws_url"]
