"""Reading the EMF metrics the handlers print (Powertools writes EMF records to stdout)."""

from __future__ import annotations

import json

NAMESPACE = "BroadcastSessions"
BASE = {"stage": "test", "service": "session-service"}  # the dimensions every metric has


class Emf:
    """The EMF records printed so far, as (name, value, unit, dimensions) facts."""

    def __init__(self, capsys):
        self._capsys = capsys
        self.records: list[dict] = []

    def read(self) -> list[dict]:
        out = self._capsys.readouterr().out
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{") and '"_aws"' in line:
                self.records.append(json.loads(line))
        return self.records

    def clear(self) -> None:
        self._capsys.readouterr()
        self.records = []

    def points(self, name: str) -> list[tuple[float, str, dict]]:
        """(value, unit, dimensions) of every data point of metric `name`."""
        found = []
        for record in self.read():
            for directive in record["_aws"]["CloudWatchMetrics"]:
                assert directive["Namespace"] == NAMESPACE
                for definition in directive["Metrics"]:
                    if definition["Name"] != name:
                        continue
                    (dimension_names,) = directive["Dimensions"]
                    dimensions = {key: record[key] for key in dimension_names}
                    values = record[name] if isinstance(record[name], list) else [record[name]]
                    found += [(value, definition["Unit"], dimensions) for value in values]
        return found

    def total(self, name: str, **dimensions: str) -> float:
        return sum(value for value, _, dims in self.points(name) if dims == {**BASE, **dimensions})
