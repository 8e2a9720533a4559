"""What may import what: the layer's wings (import-linter's contracts in pyproject.toml) and the functions,
which build on the layer's entry points only (docs/architecture.md, "The layer's wings")."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "session_core"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
# What a function's app.py may import from the layer: the entry points and the shared modules.
FUNCTION_MAY_IMPORT = ("session_core.api", "session_core.usecases", "session_core.models", "session_core.errors",
                       "session_core.domain")


def lint_imports(layer_dir: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts from pyproject.toml, over the session_core package found in `layer_dir`."""
    env = {**os.environ, "PYTHONPATH": str(layer_dir)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120, check=False)


def test_the_layer_keeps_its_import_rules():
    result = lint_imports(LAYER)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "crossing"), [
    ("data/table.py", "from ..api import http"),  # data reaching up into the request glue
    ("platform/settings.py", "from ..usecases import sessions"),  # platform reaching into a use case
    ("models.py", "from .data import sessions"),  # a shared module depending on a wing
    # A circle in data/, as table.py once closed one by importing sessions.py lazily (sessions.py imports it).
    ("data/table.py", "def _session(item):\n    from .sessions import from_item\n    return from_item(item)"),
])
def test_an_import_that_crosses_the_rules_fails_the_check(tmp_path, module, crossing):
    copy = tmp_path / "layer"
    shutil.copytree(LAYER / "session_core", copy / "session_core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / "session_core" / module
    target.write_text(target.read_text() + f"\n{crossing}\n")
    result = lint_imports(copy)
    assert result.returncode == 1
    assert "2 kept, 1 broken" in result.stdout


def not_allowed(names: set[str]) -> set[str]:
    return {name for name in names if not any(name == m or name.startswith(f"{m}.") for m in FUNCTION_MAY_IMPORT)}


def layer_imports(app: Path) -> set[str]:
    tree = ast.parse(app.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name.split(".")[0] == "session_core"}


@pytest.mark.parametrize("app", sorted((ROOT / "functions").glob("*/app.py")), ids=lambda p: p.parent.name)
def test_a_function_imports_only_the_layers_entry_points_and_shared_modules(app):
    imports = layer_imports(app)
    assert imports, "every function is built on the layer"
    assert not_allowed(imports) == set()


def test_the_functions_rule_sees_a_crossing_import(tmp_path):
    app = tmp_path / "app.py"
    app.write_text("from session_core.api.ws import ws_handler\nfrom session_core.data import connections\n"
                   "from session_core import settings\n")
    assert not_allowed(layer_imports(app)) == {"session_core.data.connections", "session_core.settings"}


def modules_matching(pattern: str) -> set[str]:
    return {path.relative_to(LAYER / "session_core").as_posix() for path in (LAYER / "session_core").rglob("*.py")
            if re.search(pattern, path.read_text())}


def test_only_the_table_module_builds_item_keys():
    # Docstrings may show the layout; code building a key writes f"SESSION#{...}" and the like.
    assert modules_matching(r'f"(SESSION|CONN|AUDIO|LEGACY)#\{') == {"data/table.py"}


def test_aws_failures_are_translated_in_one_place():
    # platform/aws.py turns every failure into a ServiceUnavailable (or a Declined the caller asked for);
    # only the Management API tells a gone socket (410) from a failure.
    assert modules_matching(r"\bunavailable\(") == {"platform/aws.py"}
    assert modules_matching(r"\b(ClientError|BotoCoreError)\b") == {"platform/aws.py", "platform/management.py"}


def test_only_the_data_wing_speaks_dynamodb():
    # Its requests (table.py, which also hands Powertools' idempotency records its client) and its stream's
    # records (sessions.py).
    assert modules_matching(r'"dynamodb"') == {"data/table.py", "data/sessions.py"}


# Each AWS service is spoken in exactly one module (docs/architecture.md, "The layer's wings"); platform/aws.py
# makes the clients and sends the calls for the modules that name their service.
SERVICE_OWNERS = {"dynamodb": "data/table.py", "kinesis": "data/audio_stream.py", "s3": "data/chunk_store.py",
                  "stepfunctions": "platform/workflow.py", "apigatewaymanagementapi": "platform/management.py",
                  "lambda": "platform/lambdas.py"}
GENERIC = "platform/aws.py"  # client(service) and call(service, ...) for everyone: the service is a parameter


def services_spoken(root: Path) -> set[tuple[str | None, str]]:
    """(service, module) for every `call("<service>", ...)`, `client("<service>")`, `boto3.client("<service>")`
    (or `create_client`, or `service_name=`) under `root`; None when the service is not written there."""
    spoken = set()
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            if name not in ("call", "client", "create_client"):
                continue
            given = node.args[0] if node.args else next(
                (k.value for k in node.keywords if k.arg == "service_name"), None)
            if given is None:
                continue
            service = given.value if isinstance(given, ast.Constant) and isinstance(given.value, str) else None
            spoken.add((service, path.relative_to(root).as_posix()))
    return spoken


def test_each_aws_service_is_spoken_in_its_one_module():
    spoken = services_spoken(LAYER / "session_core")
    assert spoken == {*((service, owner) for service, owner in SERVICE_OWNERS.items()), (None, GENERIC)}
    for app in (ROOT / "functions").glob("*/app.py"):
        assert services_spoken(app.parent) == set(), app


def test_a_service_spoken_outside_its_module_fails_the_rule(tmp_path):
    copy = tmp_path / "session_core"
    shutil.copytree(LAYER / "session_core", copy, ignore=shutil.ignore_patterns("__pycache__"))
    audio = copy / "usecases" / "audio.py"
    audio.write_text(audio.read_text() + '\n\ndef _put(**request):\n    return call("kinesis", "put_record", **request)\n')
    assert ("kinesis", "usecases/audio.py") in services_spoken(copy)
