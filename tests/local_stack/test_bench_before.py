"""The bench's before/after in one run (`--before REVISION`): a stack of another revision runs from that
revision's files, its rows are labelled with it and carry no goal."""

from __future__ import annotations

import json
import subprocess
import types

import pytest

import bench.__main__ as bench_main
from bench.support import revision_tree
from local_stack.launcher import ROOT


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True, text=True).stdout


def test_the_tree_holds_the_revisions_files(tmp_path):
    revision = _git("rev-list", "-1", "HEAD", "--", "local_stack/moto_server.py").strip()
    tree = revision_tree(f"{revision}~1", tmp_path / "tree")
    assert (tree / "local_stack" / "moto_server.py").read_text() == _git("show", f"{revision}~1:local_stack/moto_server.py")
    assert (tree / "template.yaml").exists() and (tree / "functions").is_dir() and (tree / "layers").is_dir()
    assert not (tree / "bench").exists()  # only what a stack is made of


def test_an_unknown_revision_is_an_error(tmp_path):
    with pytest.raises(subprocess.CalledProcessError):
        revision_tree("no-such-revision", tmp_path / "tree")


def test_each_suite_runs_against_the_revision_first_its_rows_labelled(monkeypatch, tmp_path):
    roots = []

    class FakeStack:
        def __init__(self, state_dir, *args, root=ROOT):
            roots.append(root)

        def __enter__(self):
            return {"root": str(roots[-1])}, None

        def __exit__(self, *exc):
            return False

    suite = types.SimpleNamespace(run=lambda info: [{"measure": "x", "p50": 1.0, "goal": "<= 2", "met": True,
                                                     "root": info["root"]}])
    monkeypatch.setattr(bench_main, "running_stack", FakeStack)
    monkeypatch.setitem(bench_main.SUITES, "fake", suite)
    monkeypatch.setattr(bench_main, "revision_tree", lambda revision, into: into)
    assert bench_main.main(["--only", "fake", "--before", "abc123", "--results", str(tmp_path)]) == 0
    before, after = json.loads((tmp_path / "latest.json").read_text())["rows"]
    assert (before["measure"], before["goal"], before["met"]) == ("[abc123] x", "", None)  # no goal of its own
    assert (after["measure"], after["goal"], after["met"]) == ("x", "<= 2", True)
    rows = (tmp_path / "latest.md").read_text()
    assert "| [abc123] x | " in rows and "| x | " in rows
    assert roots[0] != ROOT and roots[1] == ROOT  # the revision's stack first, from its own tree
    assert "Rows marked [abc123]" in rows
