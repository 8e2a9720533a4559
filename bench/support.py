"""Helpers shared by the WebSocket, audio and teardown suites: tokens, sessions,
waiting for the stack to go quiet, the open-file limit, and the functions' REPORT
lines (the local stack's own per-invocation durations) for breakdowns."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import time
from pathlib import Path

import httpx

from local_stack.aws import initiate_auth

_CLK_TCK = os.sysconf("SC_CLK_TCK")
_REPORT = re.compile(rb"^REPORT RequestId: \S+ Duration: ([0-9.]+) ms")


def id_token(info: dict, user: int = 0) -> str:
    u = info["users"][user]
    return initiate_auth(info["awsEndpointUrl"], info["region"], info["userPoolClientId"],
                         u["username"], u["password"])["IdToken"]


def create_sessions(info: dict, token: str, count: int) -> list[str]:
    with httpx.Client(base_url=info["httpApiUrl"], headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        ids = []
        for _ in range(count):
            # Public: the suites' anonymous listeners join by the ID (a link session needs its key).
            response = api.post("/sessions", json={"sourceLanguage": "en", "access": "public"})
            if response.status_code != 201:
                raise RuntimeError(f"POST /sessions: {response.status_code} {response.text}")
            ids.append(response.json()["sessionId"])
        return ids


def end_session(info: dict, token: str, session_id: str) -> None:
    with httpx.Client(base_url=info["httpApiUrl"], headers={"Authorization": f"Bearer {token}"}, timeout=60) as api:
        api.delete(f"/sessions/{session_id}")


def raise_open_files(wanted: int) -> int:
    """Raises this process's soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); returns the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


# ------------------------------------------------------------------ quiet stack


def _stack_tree(root: int) -> list[int]:
    """The stack process and all its descendants (moto, Lambda workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_bytes()
            except OSError:
                continue
            parents[int(entry)] = int(stat[stat.rindex(b")") + 2:].split()[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree += frontier
    return tree


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def settle(info: dict, *, busy_below: float = 0.3, quiet_for: float = 1.0, timeout: float = 120.0) -> float:
    """Waits until the stack's processes together use under `busy_below` of one core for `quiet_for`
    seconds (a previous step's background work -- $disconnect, status broadcasts, Step Functions --
    must not land in the next measurement). Returns the seconds waited."""
    started = time.monotonic()
    step, quiet = 0.25, 0.0
    pids = _stack_tree(info["pid"])
    before = _cpu_ticks(pids)
    while time.monotonic() - started < timeout:
        time.sleep(step)
        pids = _stack_tree(info["pid"])
        after = _cpu_ticks(pids)
        used = (after - before) / _CLK_TCK / step
        before = after
        quiet = quiet + step if used < busy_below else 0.0
        if quiet >= quiet_for:
            break
    return time.monotonic() - started


# ------------------------------------------------------------- function REPORTs


class Reports:
    """REPORT durations the local stack writes to <logsDir>/<Function>.log, from a mark on."""

    def __init__(self, info: dict) -> None:
        self.dir = Path(info["logsDir"])
        self._marks: dict[str, int] = {}

    def mark(self, *functions: str) -> None:
        for function in functions:
            path = self.dir / f"{function}.log"
            self._marks[function] = path.stat().st_size if path.exists() else 0

    def durations(self, function: str) -> list[float]:
        path = self.dir / f"{function}.log"
        if not path.exists():
            return []
        with path.open("rb") as f:
            f.seek(self._marks.get(function, 0))
            data = f.read()
        return [float(m.group(1)) for line in data.splitlines() if (m := _REPORT.match(line))]


def revision_tree(revision: str, into: Path) -> Path:
    """A git revision's template and code (`git archive` of template.yaml, functions, layers, statemachines)
    extracted into `into`, for measuring how it was beside how it is."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(["git", "archive", revision, "template.yaml", "functions", "layers", "statemachines"],
                             cwd=root, check=True, capture_output=True).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into
