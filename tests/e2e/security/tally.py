"""Per-suite case counters for the security suites; printed by conftest's pytest_terminal_summary."""

from __future__ import annotations

from collections import defaultdict


class Tally:
    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self.failures: dict[str, list[str]] = defaultdict(list)

    def check(self, suite: str, ok: bool, what: str) -> bool:
        """Counts one case; returns ok. Tests assert `not tally.failures_of(suite, since)` at the end."""
        counts = self.counts[suite]
        counts[0] += 1
        if ok:
            counts[1] += 1
        else:
            self.failures[suite].append(what)
        return ok

    def mark(self, suite: str) -> int:
        return len(self.failures[suite])

    def new_failures(self, suite: str, since: int) -> list[str]:
        return self.failures[suite][since:]


TALLY = Tally()
