"""Status fan-out under a crowd (issue 25): N listeners (default 1,000) join one session in a burst with the
local stack's AWS-like @connections latency on (30 ms a call, local_stack/README.md "How close to AWS"); when half of them
are in, the speaker pauses over its socket.

- **pause -> listener told**: from the pause sent to each listener that had joined before it receiving the
  `paused` status; p50, p95 and the last one. Goal: the last within 2 s.
  **Baseline** (same run, same session, same listeners): once the crowd is in and the stack quiet, the
  speaker resumes, and the same listeners are timed until told `active`: one fan-out with no crowd joining,
  though to the whole crowd (twice the pause's audience), so it can be the slower of the two.
- **posts per join**: the messages every socket of the session received while the crowd joined (the pause's
  own message to each socket left out), over N. Goal: at most 2 (linear: a join is not told to everyone).

`BENCH_CROWD_BEFORE=<git revision>` (e.g. `main`) runs the same crowd a second time, in the same run,
against a stack of that revision's template and code (`git archive` of template.yaml, functions, layers,
statemachines into a temporary folder; the local stack of this checkout): the before and after rows side by
side. `BENCH_CROWD_LISTENERS` and `BENCH_CROWD_REPEATS` (default 2) size it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path

from local_stack.launcher import running_stack

from .stats import row, summary
from .support import create_sessions, id_token, raise_open_files, revision_tree, settle
from .websocket import ws_connect

LATENCY_MS = 30
STACK_ARGS = ["--ws-post-latency-ms", str(LATENCY_MS), "--parameter-overrides", "MaxListenersPerSession=2000"]
LISTENERS = int(os.environ.get("BENCH_CROWD_LISTENERS", "1000"))
REPEATS = int(os.environ.get("BENCH_CROWD_REPEATS", "2"))
BEFORE = os.environ.get("BENCH_CROWD_BEFORE", "")
BATCH = 50  # handshakes at once: the burst
TOLD_TIMEOUT = 180.0  # a pause not told by then counts as never told
GOAL_LAST_MS = 2000.0
GOAL_POSTS_PER_JOIN = 2.0


class Socket:
    def __init__(self, ws) -> None:
        self.ws, self.messages = ws, []  # (perf_counter, message)
        self.task = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        with contextlib.suppress(Exception):
            async for frame in self.ws:
                self.messages.append((time.perf_counter(), json.loads(frame)))

    def first(self, status: str, since: float) -> float | None:
        return next((t for t, m in self.messages if t >= since and m.get("status") == status), None)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 10)
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _told(sockets: list[Socket], status: str, since: float) -> list[float]:
    """ms from `since` to each socket's first `status` message; waits (bounded) for all of them."""
    deadline = time.perf_counter() + TOLD_TIMEOUT
    while time.perf_counter() < deadline and any(s.first(status, since) is None for s in sockets):
        await asyncio.sleep(0.05)
    return [((t - since) * 1000 if (t := s.first(status, since)) is not None else float("inf")) for s in sockets]


async def _one(info: dict, token: str) -> dict:
    (session_id,) = await asyncio.to_thread(create_sessions, info, token, 1)
    base = f"{info['webSocketUrl']}?sessionId={session_id}"
    speaker = Socket(await ws_connect(f"{base}&role=speaker&token={token}"))
    crowd: list[Socket] = []
    try:
        started = time.perf_counter()

        async def join(count: int) -> None:
            for start in range(0, count, BATCH):
                opened = await asyncio.gather(*(ws_connect(f"{base}&role=listener")
                                                for _ in range(min(BATCH, count - start))))
                crowd.extend(Socket(ws) for ws in opened)

        await join(LISTENERS // 2)
        before_pause = list(crowd)
        rest = asyncio.create_task(join(LISTENERS - LISTENERS // 2))
        paused_at = time.perf_counter()
        await speaker.ws.send(json.dumps({"action": "pause"}))
        pause = await _told(before_pause, "paused", paused_at)
        await rest
        joined_s = time.perf_counter() - started
        await asyncio.to_thread(settle, info, timeout=300)
        everyone = [speaker, *crowd]
        pause_told = sum(s.first("paused", paused_at) is not None for s in everyone)
        posts = sum(len(s.messages) for s in everyone) - pause_told
        resumed_at = time.perf_counter()
        await speaker.ws.send(json.dumps({"action": "resume"}))
        resume = await _told(before_pause, "active", resumed_at)
        print(f"bench: crowd of {len(crowd)} in {joined_s:.1f} s: pause told to the last of {len(pause)} after "
              f"{max(pause):.0f} ms (resume, no crowd: {max(resume):.0f} ms), {posts} posts", flush=True)
        return {"pause": pause, "resume": resume, "posts_per_join": posts / len(crowd), "joined_s": joined_s}
    finally:
        await asyncio.gather(*(s.close() for s in [speaker, *crowd]))
        await asyncio.to_thread(settle, info, timeout=300)


async def _all(info: dict) -> list[dict]:
    token = id_token(info)
    return [await _one(info, token) for _ in range(REPEATS)]


def _rows(label: str, results: list[dict]) -> list[dict]:
    pause = [ms for r in results for ms in r["pause"]]
    resume = [ms for r in results for ms in r["resume"]]
    last = summary([max(r["pause"]) for r in results])
    per_join = summary([r["posts_per_join"] for r in results])
    return [
        row(f"{label}pause -> listener told, {LISTENERS:,} joining (baseline: resume to all, none joining)",
            summary(pause), summary(resume)),
        row(f"{label}pause -> last listener told", last, summary([max(r["resume"]) for r in results]),
            goal="<= 2 s", met=last["p95"] <= GOAL_LAST_MS),
        row(f"{label}posts per join (messages to the session's sockets / joins)", per_join,
            goal=f"<= {GOAL_POSTS_PER_JOIN:g} (linear)", met=per_join["p95"] <= GOAL_POSTS_PER_JOIN, unit="")
        | {"joined_s": [round(r["joined_s"], 1) for r in results]},
    ]


def run(info: dict) -> list[dict]:
    raise_open_files(2 * LISTENERS + 1024)
    rows = []
    if BEFORE:
        with tempfile.TemporaryDirectory(prefix="bench-crowd-before-") as folder:
            # The revision's template and code; the local stack stays this checkout's (for the latency switch).
            template = revision_tree(BEFORE, Path(folder) / "tree",
                                     ("template.yaml", "functions", "layers", "statemachines")) / "template.yaml"
            with running_stack(Path(folder) / "state", "--template", str(template), *STACK_ARGS) as (before, _):
                rows += [r | {"met": None, "goal": ""} for r in _rows(f"[{BEFORE}] ", asyncio.run(_all(before)))]
    return rows + _rows("", asyncio.run(_all(info)))
