"""The client library (client/, a pip package of its own) and its broadcast-session CLI end to end, against the
real local stack: real Cognito tokens, the real HTTP and WebSocket gateways and handlers, audio checked in
Kinesis. Failures are injected only around the real transport (an httpx transport wrapper, a dead port, a forged
token, the Management API's DeleteConnection); the server under test is never mocked. The library's unit tests
are in tests/client.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CLIENT_DIR = ROOT / "client"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

from broadcast_client import load_local_config  # noqa: E402 - client/ is on the path from here on

TIMEOUT = 20.0  # seconds for any one thing the stack does asynchronously (broadcasts, teardown)


@pytest.fixture(scope="module")
def stack_json(stack) -> Path:
    return stack.state_dir / "stack.json"


@pytest.fixture(scope="module")
def config(stack_json):
    return load_local_config(stack_json)


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "broadcast_client", *args]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BROADCAST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CLIENT_DIR), env.get("PYTHONPATH")]))
    return env


def run_cli(tmp_path: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    # cwd=tmp_path: no .local/stack.json there, so only --local decides which stack is used.
    return subprocess.run(cli_command(*args), cwd=tmp_path, env=cli_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)
