"""The handler tests pass whatever ran before them in the same process; a test that reads what the whole run
left behind runs after it.

By default tests/functions runs before tests/unit; run the other way round, a client a unit test had built under
its own environment (aimed at AWS itself) once reached the handlers, which then answered 503.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HANDLER_TEST = "tests/functions/test_http_functions.py::test_create_returns_the_session_and_its_location"


def test_the_handler_tests_pass_after_the_unit_tests():
    # As from a new shell: not the environment the handler tests of this process may have set.
    shell = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "tests/unit", HANDLER_TEST],
                            check=False, env=shell, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_log_scan_runs_after_every_other_test():
    # It reads what the whole run logged (its marker, not its file's name, puts it last); tests/unit sorts after
    # tests/e2e, so a scan ordered by name alone would not be last.
    result = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--collect-only",
                             "tests/e2e", "tests/unit"],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:]
    collected = [line for line in result.stdout.splitlines() if "::" in line]
    scan = [i for i, test in enumerate(collected) if test.startswith("tests/e2e/test_log_hygiene.py::")]
    assert len(scan) >= 2 and scan == list(range(len(collected) - len(scan), len(collected))), collected[-5:]
