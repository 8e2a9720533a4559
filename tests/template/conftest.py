"""Fixtures for the template checks: template.yaml parsed as plain data.

CloudFormation short-form tags become their long form ({"Ref": ...},
{"Fn::GetAtt": [...]}, {"Fn::Sub": ...}), so tests compare plain dicts.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that also accepts !Ref, !GetAtt, !Sub, !If and the other short forms."""


def _short_form(loader: CfnLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    key = tag_suffix if tag_suffix in ("Ref", "Condition") else f"Fn::{tag_suffix}"
    return {key: value}


CfnLoader.add_multi_constructor("!", _short_form)


def load_cfn_yaml(path: Path) -> dict:
    with path.open(encoding="utf-8") as f:
        return yaml.load(f, Loader=CfnLoader)  # a SafeLoader: no arbitrary objects


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
