"""The stack for end-to-end tests: one ``python -m local_stack dev`` per test session, or, with
DEPLOYED_STACK=<name> (`make test-deployed`), a deployed stack found by its CloudFormation outputs,
with test users of its own. Tests that need the local stack's internals (its log files, fault
hooks, the embedded moto) are marked ``local_only("why")`` and skipped against a deployed stack.

Tests use the ``stack`` fixture::

    def test_something(stack):
        r = httpx.post(f"{stack.url}/sessions", headers=stack.auth("alice"), json={...})
        stack["tableName"], stack.info            # stack.json content
        stack.token("bob", access=True)           # cached Cognito tokens
        stack.log("CreateSessionFunction")        # that function's log so far

and ``http``, an httpx client on the stack's HTTP API (one per module). A second stack with other template
parameters runs beside the first in a ``StackInBackground``. What the WebSocket tests share is in ws_helpers.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

import deployed
from local_stack.aws import client as aws_client
from local_stack.aws import initiate_auth
from local_stack.launcher import STARTUP_TIMEOUT, LaunchError, running_stack

# The deployed stack to test (its region: DEPLOYED_REGION, or boto3's default); unset: the local stack.
DEPLOYED_STACK = os.environ.get("DEPLOYED_STACK") or None
# The shared local stack's MaxLiveSessionsPerUser (the template's maximum): a deployed stack under test needs it too.
SUITE_SESSION_CAP = 1000


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.e2e)
            local_only = item.get_closest_marker("local_only")
            if DEPLOYED_STACK and local_only:
                why = local_only.args[0] if local_only.args else "needs the local stack's internals"
                item.add_marker(pytest.mark.skip(reason=f"local stack only: {why}"))


@dataclass
class LocalStackHandle:
    info: dict  # stack.json
    state_dir: Path
    process: subprocess.Popen
    _tokens: dict = field(default_factory=dict)
    _clients: dict = field(default_factory=dict)

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
        return (self.state_dir / "output.log").read_text(errors="replace")

    def log_lines(self, function: str) -> list[dict]:
        """The function's JSON log records (Powertools lines; the runtime's plain lines are skipped)."""
        lines = []
        for line in self.log(function).splitlines():
            if line.startswith("{"):
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    pass
        return lines

    def aws(self, service: str):
        """A boto3 client of the stack's embedded AWS endpoint, one per service."""
        if service not in self._clients:
            self._clients[service] = aws_client(service, self.info["awsEndpointUrl"], self.info["region"])
        return self._clients[service]

    def audio_records(self, session_id: str) -> list[dict]:
        """The session's Kinesis records, shard by shard in sequence order, with their shard and partition key."""
        kinesis, stream = self.aws("kinesis"), self.info["audioStreamName"]
        records = []
        for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
            iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                                  ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while iterator:
                page = kinesis.get_records(ShardIterator=iterator, Limit=10_000)
                for record in page["Records"]:
                    data = json.loads(record["Data"])
                    if data.get("sessionId") == session_id:
                        records.append({**data, "shard": shard["ShardId"], "partitionKey": record["PartitionKey"]})
                iterator = page.get("NextShardIterator") if page["Records"] else None
        return records


class DeployedStackHandle(LocalStackHandle):
    """The same handle on a deployed stack: its outputs under stack.json's keys, its own test users,
    and AWS clients with the caller's credentials. It has no log files or process of its own."""

    def token(self, name: str = "alice", *, access: bool = False) -> str:
        if name not in self._tokens:
            self._tokens[name] = deployed.sign_in(self.info, self.user(name))
        return self._tokens[name]["AccessToken" if access else "IdToken"]

    def aws(self, service: str):
        if service not in self._clients:
            self._clients[service] = deployed.aws_client(service, self.info["region"])
        return self._clients[service]

    def log(self, function: str) -> str:
        raise RuntimeError("a deployed stack's logs are in CloudWatch: mark the test local_only")

    def output(self) -> str:
        raise RuntimeError("a deployed stack has no local output: mark the test local_only")


def eventually(check: Callable[[], object], timeout: float = 10.0, what: str = "", interval: float = 0.2):
    """Polls `check` until it returns a truthy value (returned) or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what or check}")
        time.sleep(interval)


def _tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="session")
def stack(tmp_path_factory) -> LocalStackHandle:
    if DEPLOYED_STACK:
        try:
            with deployed.deployed_stack(DEPLOYED_STACK, os.environ.get("DEPLOYED_REGION") or None) as info:
                yield DeployedStackHandle(info, None, None)
        except deployed.DeployedStackError as exc:
            pytest.fail(str(exc))
        return
    state_dir = tmp_path_factory.mktemp("local-stack")
    try:
        # The suite creates hundreds of sessions as alice; the cap itself is tested on a stack of its own
        # (security/test_private_sessions.py).
        with running_stack(state_dir, "--parameter-overrides", f"MaxLiveSessionsPerUser={SUITE_SESSION_CAP}") as (
                info, process):
            yield LocalStackHandle(info, state_dir, process)
    except LaunchError as exc:
        pytest.fail(str(exc))
    assert not (state_dir / "stack.json").exists(), "stack.json is removed on a clean shutdown"


@pytest.fixture(scope="module")
def http(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


class StackInBackground:
    """A second local stack, started on a thread while the tests of the first one run (its start-up is
    mostly waiting on processes), and stopped when the module is done."""

    def __init__(self, state_dir, *args: str) -> None:
        self.handle: LocalStackHandle | None = None
        self.error: BaseException | None = None
        self._ready, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(state_dir, args), daemon=True)
        self._thread.start()

    def _run(self, state_dir, args) -> None:
        try:
            with running_stack(state_dir, *args) as (info, process):
                self.handle = LocalStackHandle(info, state_dir, process)
                self._ready.set()
                self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported by the fixtures
            self.error = exc
        finally:
            self._ready.set()

    def wait(self) -> LocalStackHandle:
        self._ready.wait(STARTUP_TIMEOUT + 30)
        if self.handle is None:
            pytest.fail(f"the second local stack did not start: {self.error}")
        return self.handle

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(120)
        if self.error:
            pytest.fail(f"the second local stack did not stop cleanly: {self.error}")

