"""Fixtures for the template checks: template.yaml as CloudFormation receives it, as plain data.

The project's one reader (local_stack.template.load_yaml: cfn-lint's decoder and its
AWS::LanguageExtensions transform) turns short-form tags into their long form ({"Ref": ...},
{"Fn::GetAtt": [...]}, {"Fn::Sub": ...}) and writes out every Fn::ForEach, so tests compare plain dicts.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local_stack.template import load_yaml

ROOT = Path(__file__).resolve().parents[2]


def load_cfn_yaml(path: Path) -> dict:
    return load_yaml(path.read_text(encoding="utf-8"))


def _merge_globals(globals_: dict, own: dict) -> dict:
    """SAM's Globals rule: the resource's scalars win, maps merge, lists add up."""
    merged = dict(globals_)
    for key, value in own.items():
        base = merged.get(key)
        if isinstance(base, dict) and isinstance(value, dict):
            merged[key] = _merge_globals(base, value)
        elif isinstance(base, list) and isinstance(value, list):
            merged[key] = base + value
        else:
            merged[key] = value
    return merged


def metric_rows(rows: list[list]) -> list[list]:
    """A dashboard widget's metrics array with CloudWatch's shorthand written out: in a metric, "." is
    the value of the metric above at that position, a leading "..." all the fields of the metric above
    but as many last ones as follow it. The rendering options (a trailing object) are each row's own."""
    expanded, above = [], []
    for row in rows:
        options = row[-1:] if row and isinstance(row[-1], dict) else []
        fields = row[:len(row) - len(options)]
        if fields[:1] == ["..."]:
            fields = above[:len(above) - len(fields) + 1] + fields[1:]
        fields = [above[i] if value == "." else value for i, value in enumerate(fields)]
        if fields:  # a math expression ([{...}]) is no metric "above"
            above = fields
        expanded.append(fields + options)
    return expanded


# What CloudWatch uses for a field a dashboard leaves out ("Dashboard Body Structure and Syntax"); a metric's
# own statistic, left out, is its widget's, and that one, left out, Average.
WIDGET_DEFAULTS = {"width": 6, "height": 6}
METRIC_WIDGET_DEFAULTS = {"period": 300, "stat": "Average"}


def dashboard_body(body: str) -> dict:
    """A DashboardBody `!Sub` text as CloudWatch reads it: parsed, the documented defaults filled in, every
    metrics array written out. The substitutions stay as text ("${StageName}"); a bare one (a number,
    `"value":${Budget}`) is quoted."""
    dashboard = json.loads(re.sub(r"(?<=:)(\$\{[\w:]+\})", r'"\1"', body))
    for widget in dashboard["widgets"]:
        for key, value in WIDGET_DEFAULTS.items():
            widget.setdefault(key, value)
        if widget["type"] == "metric":
            for key, value in METRIC_WIDGET_DEFAULTS.items():
                widget["properties"].setdefault(key, value)
        if "metrics" in widget["properties"]:
            widget["properties"]["metrics"] = metric_rows(widget["properties"]["metrics"])
            for row in widget["properties"]["metrics"]:
                if not isinstance(row[0], dict):  # a metric, not an expression
                    if not isinstance(row[-1], dict):
                        row.append({})
                    row[-1].setdefault("stat", widget["properties"]["stat"])
    return dashboard


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def template() -> dict:
    return load_cfn_yaml(ROOT / "template.yaml")


@pytest.fixture(scope="session")
def functions(template: dict) -> dict[str, dict]:
    """Logical ID -> the function's Properties with Globals.Function applied."""
    globals_ = template.get("Globals", {}).get("Function", {})
    return {
        name: _merge_globals(globals_, resource.get("Properties", {}))
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@pytest.fixture(scope="session")
def http_events(functions: dict[str, dict]) -> list[tuple[str, dict]]:
    """(function logical ID, event Properties) for every HttpApi event."""
    return [
        (name, event.get("Properties", {}))
        for name, props in functions.items()
        for event in props.get("Events", {}).values()
        if event["Type"] == "HttpApi"
    ]
