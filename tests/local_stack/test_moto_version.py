"""The moto patches run only on the moto version they were written for; another version stops the stack clearly."""

from __future__ import annotations

import asyncio
from importlib import metadata

import pytest

from local_stack.moto_server import SUPPORTED_MOTO, moto_version_problem
from local_stack.stack import LocalStack, StackConfig, StackError


def test_the_installed_moto_is_the_supported_one():
    assert metadata.version("moto") == SUPPORTED_MOTO
    assert moto_version_problem() is None


def test_another_moto_is_named_with_the_supported_one():
    problem = moto_version_problem("5.3.0")
    assert f"moto {SUPPORTED_MOTO}" in problem and "moto 5.3.0 is installed" in problem


def test_the_stack_refuses_to_start_on_another_moto(monkeypatch, tmp_path):
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda name: "5.3.0" if name == "moto" else real_version(name))
    stack = LocalStack(StackConfig(template=tmp_path / "template.yaml", state_dir=tmp_path / ".local"))
    with pytest.raises(StackError, match=rf"written for moto {SUPPORTED_MOTO}, but moto 5\.3\.0 is installed"):
        asyncio.run(stack.start())
    asyncio.run(stack.stop())
    assert not (tmp_path / ".local").exists()  # refused before anything started
