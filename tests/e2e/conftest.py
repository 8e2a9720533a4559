"""The local stack for end-to-end tests: one ``python -m local_stack dev`` per test session.

Tests use the ``stack`` fixture::

    def test_something(stack):
        r = httpx.post(f"{stack.url}/sessions", headers=stack.auth("alice"), json={...})
        stack["tableName"], stack.info            # stack.json content
        stack.token("bob", access=True)           # cached Cognito tokens
        stack.log("CreateSessionFunction")        # that function's log so far
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from local_stack.aws import initiate_auth

ROOT = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 60.0
SHUTDOWN_TIMEOUT = 30.0


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)


@dataclass
class LocalStackHandle:
    info: dict  # stack.json
    state_dir: Path
    process: subprocess.Popen
    output_file: Path
    _tokens: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API, stage included (http://127.0.0.1:PORT/dev)."""
        return self.info["httpApiUrl"]

    def __getitem__(self, key: str):
        return self.info[key]

    def user(self, name: str) -> dict:
        for user in self.info["users"]:
            if name in (user["name"], user["username"]):
                return user
        raise KeyError(f"no local user {name!r}")

    def token(self, name: str = "alice", *, access: bool = False) -> str:
        """A Cognito ID token (or access token) of a local user, signed in once per test session."""
        if name not in self._tokens:
            user = self.user(name)
            self._tokens[name] = initiate_auth(self.info["awsEndpointUrl"], self.info["region"],
                                               self.info["userPoolClientId"], user["username"], user["password"])
        return self._tokens[name]["AccessToken" if access else "IdToken"]

    def auth(self, name: str = "alice", *, access: bool = False) -> dict:
        return {"Authorization": f"Bearer {self.token(name, access=access)}"}

    def log(self, function: str) -> str:
        path = self.state_dir / "logs" / f"{function}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def output(self) -> str:
        return self.output_file.read_text(errors="replace")


def _tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> LocalStackHandle:
    state_dir = tmp_path_factory.mktemp("local-stack")
    output_file = state_dir / "output.log"
    stack_json = state_dir / "stack.json"
    with output_file.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "local_stack", "dev", "--http-port", "0", "--aws-port", "0",
             "--state-dir", str(state_dir)],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, env=os.environ.copy())
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while not stack_json.exists():
        if process.poll() is not None:
            pytest.fail(f"the local stack exited with {process.returncode} during startup:\n{_tail(output_file)}")
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            pytest.fail(f"the local stack was not ready after {STARTUP_TIMEOUT:.0f} s:\n{_tail(output_file)}")
        time.sleep(0.2)

    handle = LocalStackHandle(json.loads(stack_json.read_text()), state_dir, process, output_file)
    yield handle

    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(SHUTDOWN_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the local stack did not stop within {SHUTDOWN_TIMEOUT:.0f} s of SIGINT:\n{_tail(output_file)}")
    assert code == 0, f"the local stack exited with {code} after SIGINT:\n{_tail(output_file)}"
    assert not stack_json.exists(), "stack.json is removed on a clean shutdown"
