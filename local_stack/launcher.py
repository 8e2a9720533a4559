"""Start `python -m local_stack dev` as a subprocess and wait until it is ready:
shared by the end-to-end tests and the benchmarks."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 90.0
SHUTDOWN_TIMEOUT = 30.0


class LaunchError(RuntimeError):
    pass


def tail(path: Path, lines: int = 80) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


@contextlib.contextmanager
def running_stack(state_dir: Path, *extra_args: str, env: dict | None = None,
                  root: Path = ROOT) -> Iterator[tuple[dict, subprocess.Popen]]:
    """Yields (stack.json, process); stops it with SIGINT and raises LaunchError if it does not stop cleanly.
    `root`: the checkout whose local stack and template run (another revision's tree, for a before/after)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    output_file = state_dir / "output.log"
    stack_json = state_dir / "stack.json"
    with output_file.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "local_stack", "dev", "--http-port", "0", "--ws-port", "0", "--aws-port", "0",
             "--console-port", "0", "--state-dir", str(state_dir), *extra_args],
            cwd=root, stdout=output, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not stack_json.exists():
            if process.poll() is not None:
                raise LaunchError(f"the local stack exited with {process.returncode} during startup:\n"
                                  f"{tail(output_file)}")
            if time.monotonic() > deadline:
                raise LaunchError(f"the local stack was not ready after {STARTUP_TIMEOUT:.0f} s:\n{tail(output_file)}")
            time.sleep(0.1)
        yield json.loads(stack_json.read_text()), process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                code = process.wait(SHUTDOWN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise LaunchError(f"the local stack did not stop within {SHUTDOWN_TIMEOUT:.0f} s of SIGINT:\n"
                                  f"{tail(output_file)}") from None
            if code != 0:
                raise LaunchError(f"the local stack exited with {code} after SIGINT:\n{tail(output_file)}")
