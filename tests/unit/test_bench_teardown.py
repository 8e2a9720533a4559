"""The teardown bench's profile helpers: its repetition switch and CPU seconds by process."""

import pytest

from bench import teardown


def test_repeats_override_some_sizes_and_refuse_anything_else():
    assert teardown.repeats("10:0,1000:1") == {10: 0, 100: 5, 1000: 1}
    assert teardown.repeats("") == {10: 5, 100: 5, 1000: 3}
    for bad in ("1000", "1000:x", "7:1", "-1:2"):
        with pytest.raises(SystemExit, match="BENCH_TEARDOWN_REPEATS"):
            teardown.repeats(bad)


def test_cpu_used_sums_by_kind_and_counts_new_processes_whole():
    before = {1: ("stack", 10.0), 2: ("moto", 5.0), 3: ("bs-TeardownWorkerFunction-x", 1.0)}
    after = {1: ("stack", 10.5), 2: ("moto", 7.25), 3: ("bs-TeardownWorkerFunction-x", 1.5),
             4: ("bs-TeardownWorkerFunction-x", 0.75), 5: ("bs-WsDisconnectFunction-y", 0.0)}
    assert teardown._cpu_used(before, after) == {"moto": 2.25, "TeardownWorkerFunction": 1.25, "stack": 0.5}
