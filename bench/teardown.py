"""Session teardown: the time from the DELETE request being sent to the last listener socket closed,
for 10, 100 and 1,000 listeners connected to one session.

DELETE ends the session and starts the teardown state machine (docs/teardown.md): Query 500
connections a page, batches of 50, one TeardownWorkerFunction invocation per batch (at most 10 at
once), each posting sessionEnded and deleting the connection through the Management API. Here the
state machine runs in moto and its Lambda tasks in the local Lambda runtime.

Each repetition: a fresh session, N anonymous listeners opened BATCH at a time (each draining its
messages, so status broadcasts never back up and the close frame is seen at once), a wait until the
stack is quiet again (the joins' status broadcasts done), then DELETE. A socket counts as closed
when the client has seen the close (its receive loop ended); the clock stops at the last one.
Sizes are interleaved (10, 100, 1,000, 10, 100, 1,000, ...) so drift hits them alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from pathlib import Path

import httpx

from .stats import row, summary
from .support import Reports, _stack_tree, create_sessions, id_token, raise_open_files, settle
from .websocket import ws_connect

# The template caps a session at MaxListenersPerSession (default 500) listeners; 1,000 need more.
STACK_ARGS = ["--parameter-overrides", "MaxListenersPerSession=2000"]

SIZES = (10, 100, 1000)
REPEATS = {10: 5, 100: 5, 1000: 3}
# Fewer runs for a profile: BENCH_TEARDOWN_REPEATS="1000:1,100:1" (a size given 0 runs is skipped).


def repeats(spec: str) -> dict[int, int]:
    """`BENCH_TEARDOWN_REPEATS`: "size:runs,..." over the default runs, for sizes of SIZES."""
    chosen = dict(REPEATS)
    for pair in filter(None, spec.split(",")):
        size, _, runs = pair.partition(":")
        if not (size.strip().isdigit() and runs.strip().isdigit() and int(size) in SIZES):
            raise SystemExit(f"BENCH_TEARDOWN_REPEATS: {pair!r} is not size:runs with a size of {SIZES}")
        chosen[int(size)] = int(runs)
    return chosen


REPEATS = repeats(os.environ.get("BENCH_TEARDOWN_REPEATS", ""))
_CLK_TCK = os.sysconf("SC_CLK_TCK")
BATCH = 50  # listeners opened concurrently
# Bounds, so a stack that cannot keep up still finishes the run: a repetition whose listeners take
# longer than OPEN_BUDGET to open is abandoned (the session is still deleted), sockets not closed
# CLOSE_TIMEOUT after the DELETE count as never closed; either way that size gets no more repetitions.
OPEN_BUDGET = 300.0
CLOSE_TIMEOUT = 120.0
GOAL_1000_MS = 3000.0
GROWTH_GOAL = 10.0


def _process_cpu(root: int) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) so far of each process of the stack, named: the stack itself (gateway,
    AWS endpoint, Lambda runtime), moto, or the function a Lambda worker runs."""
    cpu = {}
    for pid in _stack_tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        name = "stack" if pid == root else "moto" if any(b"moto" in a for a in argv) else "other"
        with contextlib.suppress(ValueError, IndexError):
            name = json.loads(argv[-2])["function_name"]
        cpu[pid] = (name, (int(fields[11]) + int(fields[12])) / _CLK_TCK)
    return cpu


def _cpu_used(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds each kind of process used between two `_process_cpu` readings (new processes: all of theirs)."""
    used: dict[str, float] = {}
    for pid, (name, seconds) in after.items():
        short = next((f for f in _PROFILED if f in name), name)
        used[short] = round(used.get(short, 0.0) + seconds - before.get(pid, (name, 0.0))[1], 2)
    return {name: seconds for name, seconds in sorted(used.items(), key=lambda kv: -kv[1]) if seconds}


_PROFILED = ("TeardownWorkerFunction", "TeardownFinishFunction", "WsDisconnectFunction", "StatusBroadcastFunction",
             "DeleteSessionFunction")


class Listener:
    def __init__(self) -> None:
        self.closed_at: float | None = None
        self.ended_message = False
        self.task: asyncio.Task | None = None
        self.ws = None

    async def open(self, url: str) -> None:
        self.ws = await ws_connect(url)
        self.task = asyncio.create_task(self._drain(self.ws))

    async def discard(self) -> None:
        """Closes the socket from this side (a repetition that went wrong must not leak into the next)."""
        if self.ws is not None and self.closed_at is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 10)
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _drain(self, ws) -> None:
        with contextlib.suppress(Exception):  # an abnormal close is still a close
            async for message in ws:
                if isinstance(message, str) and '"sessionEnded"' in message:
                    self.ended_message = True
        self.closed_at = time.perf_counter()


async def _one(info: dict, token: str, size: int) -> dict:
    listeners = [Listener() for _ in range(size)]
    try:
        return await _measure(info, token, size, listeners)
    except Exception as exc:  # noqa: BLE001 - e.g. POST /sessions answering 500 on an overloaded stack
        problem = f"{type(exc).__name__}: {str(exc)[:200]}"
        print(f"bench: teardown {size}: {problem}", flush=True)
        return {"size": size, "open_s": None, "delete_ms": None, "problem": problem,
                "closed": 0, "told": 0, "first_ms": None, "last_ms": None}
    finally:
        await asyncio.gather(*(listener.discard() for listener in listeners))


async def _measure(info: dict, token: str, size: int, listeners: list[Listener]) -> dict:
    session_id = (await asyncio.to_thread(create_sessions, info, token, 1))[0]
    url = f"{info['webSocketUrl']}?sessionId={session_id}&role=listener"
    opened = time.perf_counter()
    problem = None
    for start in range(0, size, BATCH):
        outcomes = await asyncio.gather(*(listener.open(url) for listener in listeners[start:start + BATCH]),
                                        return_exceptions=True)
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            problem = f"{len(failures)} listeners failed to connect ({str(failures[0])[:120]})"
        elif time.perf_counter() - opened > OPEN_BUDGET and start + BATCH < size:
            problem = f"only {start + BATCH} of {size} listeners open after {OPEN_BUDGET:.0f} s"
        if problem:
            break
    open_s = time.perf_counter() - opened
    if not problem:
        await asyncio.to_thread(settle, info)
    cpu_before = _process_cpu(info["pid"])
    async with httpx.AsyncClient(base_url=info["httpApiUrl"], headers={"Authorization": f"Bearer {token}"},
                                 timeout=60) as api:
        sent = time.perf_counter()
        response = await api.delete(f"/sessions/{session_id}")
        answered = time.perf_counter()
    if response.status_code != 204:
        problem = problem or f"DELETE answered {response.status_code} {response.text[:200]}"
    tasks = [listener.task for listener in listeners if listener.task]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT)
        for task in pending:
            task.cancel()
    closes = [listener.closed_at for listener in listeners if listener.closed_at is not None]
    cpu_closed = _process_cpu(info["pid"])
    if not problem and len(closes) < size:
        problem = f"{size - len(closes)} of {size} sockets still open {CLOSE_TIMEOUT:.0f} s after the DELETE"
    result = {"size": size, "open_s": open_s, "delete_ms": (answered - sent) * 1000, "problem": problem,
              "closed": len(closes), "told": sum(listener.ended_message for listener in listeners),
              "first_ms": (min(closes) - sent) * 1000 if closes else None,
              "last_ms": (max(closes) - sent) * 1000 if not problem else None}
    print(f"bench: teardown {size}: opened in {open_s:.1f} s, DELETE {result['delete_ms']:.0f} ms, "
          f"{len(closes)} closed ({result['told']} told), last after "
          f"{result['last_ms'] or float('nan'):.0f} ms{'; ' + problem if problem else ''}", flush=True)
    await asyncio.to_thread(settle, info)  # the $disconnects and the workflow's end stay out of the next one
    # CPU seconds by process from the DELETE to the last socket closed, and to the stack idle again.
    result["cpu_to_last_closed"] = _cpu_used(cpu_before, cpu_closed)
    result["cpu_to_idle"] = _cpu_used(cpu_before, _process_cpu(info["pid"]))
    print(f"bench: teardown {size}: CPU s to the last close {result['cpu_to_last_closed']}, "
          f"to idle {result['cpu_to_idle']}", flush=True)
    return result


async def _all(info: dict, token: str) -> list[dict]:
    results, given_up = [], set()
    for round_ in range(max(REPEATS.values())):
        for size in SIZES:
            if round_ < REPEATS[size] and size not in given_up:
                results.append(await _one(info, token, size))
                if results[-1]["problem"]:
                    given_up.add(size)
    return results


def run(info: dict) -> list[dict]:
    raise_open_files(max(SIZES) + 1024)
    token = id_token(info)
    reports = Reports(info)
    reports.mark("TeardownWorkerFunction", "DeleteSessionFunction")
    results = asyncio.run(_all(info, token))

    rows, results_by_size = [], {}
    for size in SIZES:
        mine = [r for r in results if r["size"] == size]
        if not mine:
            continue
        done = [r["last_ms"] for r in mine if r["last_ms"] is not None]
        result = summary(done)
        incomplete = len(mine) - len(done)
        label = f"teardown {size:,} listeners (DELETE sent -> last socket closed)"
        if incomplete:  # no honest percentile: a run that did not finish is slower than any that did
            label += f" [{incomplete} of {len(mine)} runs did not finish: {next(r['problem'] for r in mine if r['problem'])}]"
            result |= {"p95": None}
        results_by_size[size] = result
        goal, met = ("", None)
        if size == 1000:
            goal, met = "1,000 in <= 3 s", (not incomplete and result["p95"] <= GOAL_1000_MS)
        rows.append(row(label, result, goal=goal, met=met) | {
            "repeats": len(mine), "closed": [r["closed"] for r in mine], "told_sessionEnded": [r["told"] for r in mine],
            "open_s": [r["open_s"] and round(r["open_s"], 1) for r in mine], "problems": [r["problem"] for r in mine],
            "cpu_s_to_last_closed": [r.get("cpu_to_last_closed") for r in mine],
            "cpu_s_to_idle": [r.get("cpu_to_idle") for r in mine]})
        rows.append(row(f"↳ first socket closed, {size:,} listeners",
                        summary([r["first_ms"] for r in mine if r["first_ms"] is not None])))
        rows.append(row(f"↳ DELETE answered, {size:,} listeners", summary([r["delete_ms"] for r in mine if r["delete_ms"] is not None])))
    small, large = results_by_size.get(100, {}), results_by_size.get(1000, {})

    def ratio(key: str) -> float | None:
        return large[key] / small[key] if large.get(key) and small.get(key) else None

    growth = {"n": min(small.get("n", 0), large.get("n", 0)), "p50": ratio("p50"), "p95": ratio("p95")}
    rows.append(row("growth 100 -> 1,000 listeners (t1000 / t100)", growth, goal=f"p50 <= {GROWTH_GOAL:g}x (linear)",
                    met=growth["p50"] is not None and growth["p50"] <= GROWTH_GOAL, unit="x"))
    workers = reports.durations("TeardownWorkerFunction")
    rows.append(row("↳ TeardownWorkerFunction, one batch of <= 50, per its REPORT", summary(workers)))
    return rows
